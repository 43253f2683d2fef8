"""adressat.routing"""
