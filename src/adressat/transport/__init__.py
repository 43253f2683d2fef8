"""adressat.transport"""
