"""``python -m clinishare_gateway``: the API gateway (settings from ``GATEWAY_*``)."""

from clinishare_gateway.app import run

if __name__ == "__main__":
    run()
