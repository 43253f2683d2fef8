"""adressat.testing"""
