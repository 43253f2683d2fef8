"""adressat.store"""
