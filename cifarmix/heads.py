"""The two answers every model gives, one per component of a mix: the one definition of their names.

``first`` names the class of the component from classes 0-4 (``data.GROUP_A``), ``second`` the one from classes
5-9 (``data.GROUP_B``). Models' output layers, the run store's confusion rows, the figures and the losses all use
these names.
"""

from __future__ import annotations

HEADS = ("first", "second")
