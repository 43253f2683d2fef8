"""adressat: an SMS centre (SMSC) that delivers to the right recipient, loses nothing once
accepted, and says within seconds where something went wrong."""

__version__ = "0.1.0"
