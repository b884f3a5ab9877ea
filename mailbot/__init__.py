"""mailbot: the e-mail intake robot of an ombudsman's complaints office."""

__version__ = "0.1.0"
