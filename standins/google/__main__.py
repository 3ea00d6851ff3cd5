"""``python -m standins.google``: the stand-in on the command line (``--help`` says how)."""

from standins.google.server import main

main()
