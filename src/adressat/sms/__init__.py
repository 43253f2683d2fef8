"""adressat.sms"""
