"""Allen-Bradley Logix (ControlLogix, CompactLogix) over EtherNet/IP (CIP) through pylogix.

driver.py   tags by symbolic name, read in multi-requests on a thread of the device's own
wiring.py   a configured device → its driver (the registry's `enip` entry)
tag_list.py the controller's tag list and a profile skeleton of it (`edge-agent browse`)
"""
