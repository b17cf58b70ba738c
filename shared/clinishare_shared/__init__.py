"""Clinishare common library: the pieces every service stands on, written once."""
