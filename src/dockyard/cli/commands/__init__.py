"""One module per verb; main.py imports only the one a command line needs."""
