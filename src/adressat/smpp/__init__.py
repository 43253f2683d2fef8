"""adressat.smpp"""
