"""The reference solutions of the concurrency kata: one module per topic.

Each module is also a demo: ``python -m solutions.<module>`` prints the note's
transcript with real PIDs and numbers.
"""
