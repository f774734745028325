"""The public functions' machinery: torch-exact argument checks (checks), host and device arrays (arrays),
inputs larger than the device (pieces), and the bridge to the passes' plans (launch)."""
