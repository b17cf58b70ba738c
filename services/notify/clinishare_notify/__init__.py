"""Clinishare notify: tells recipients about shares, in an in-app inbox and by e-mail without PHI."""
