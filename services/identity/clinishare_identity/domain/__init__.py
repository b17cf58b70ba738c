"""Identity's pure core: PINs, the throttle rule, request and response models. No I/O here."""
