from clinishare_gateway.app import run

run()
