"""`python -m mailbot` is the `mailbot` command."""

from .cli import main

main()
