"""adressat.app"""
