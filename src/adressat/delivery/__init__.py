"""adressat.delivery"""
