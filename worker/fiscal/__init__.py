"""fiscal"""
