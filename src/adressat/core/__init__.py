"""adressat.core"""
