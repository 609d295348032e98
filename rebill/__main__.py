"""Run the rebill command: python -m rebill."""

from rebill.cli import main

main()
