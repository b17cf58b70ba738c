"""An example analytics consumer of the Clinishare event stream (SPEC 10.5)."""
