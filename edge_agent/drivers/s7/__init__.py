"""Siemens S7 (S7-300/400/1200/1500, ISO-on-TCP) through python-snap7.

address.py  TIA Portal / Step 7 absolute addresses, S7 types and their decoding (pure)
driver.py   the poll loops: reads merged into PDU-sized byte ranges, device health
wiring.py   a configured device → its driver (the registry's `s7` entry)
"""
