"""adressat.observe"""
