"""adressat.api"""
