"""Identity's pure core: PINs, request and response models. No I/O here."""
