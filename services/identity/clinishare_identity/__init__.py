"""Clinishare identity: accounts, offices, Share PINs, connections, patients and care teams."""
