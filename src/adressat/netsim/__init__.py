"""adressat.netsim"""
