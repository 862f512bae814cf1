"""Quality rules that fit the demo plant, written for `werk demo` when none exist yet."""

from __future__ import annotations

from typing import Final

DEMO_RULES: Final = """\
# Quality rules of the demo plant (see docs/layers.md). The first matching rule applies.

[[rules]]
name = "CNC spindle temperature"
tags = "acme/berlin/machining/+/+/+/spindle.temperature"
unit = "degC"
canonical_unit = "degC"
min = 10
max = 60
max_rate = 2
spike = 3
stale_s = 30

[[rules]]
name = "oven chamber temperature"
tags = "acme/berlin/machining/+/+/+/chamber.temperature"
unit = "degC"
canonical_unit = "degC"
min = 15
max = 240
max_rate = 5
stale_s = 30

[[rules]]
name = "drive temperatures"
tags = "acme/berlin/machining/+/+/+/motor.temperature"
unit = "degC"
canonical_unit = "degC"
min = 10
max = 70
max_rate = 2
spike = 3
stale_s = 30

[[rules]]
name = "press oil temperature"
tags = "acme/berlin/machining/+/+/+/oil.temperature"
unit = "degC"
canonical_unit = "degC"
min = 10
max = 70
max_rate = 2
spike = 3
stale_s = 30

[[rules]]
name = "vibration"
tags = "acme/berlin/machining/+/+/+/vibration.rms"
unit = "mm/s"
min = 0
max = 8
spike = 2
stale_s = 30

[[rules]]
name = "every other tag of the plant"
tags = "acme/#"
stale_s = 120
"""
