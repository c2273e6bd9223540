import dataclasses

import pytest

from pimsim import load_hardware


def small_hardware(scheduler="frfcfs", page="open", tq=6, cq=2, trefi=400, trfc=60, ranks=2,
                   coalesce=True, forward=True, wq=3, high=None, low=0, hit_cap=2):
    """DDR4-2400 timing on a tiny organisation, with refresh often enough to matter.

    ``wq``, ``high``, ``low``: write buffer entries and watermarks (``high`` defaults to ``wq``).
    """
    hw = load_hardware("ddr4-2400")
    org = dataclasses.replace(hw.org, ranks=ranks, bankgroups=2, banks_per_group=2, rows=16,
                              columns=64, page_policy=page)
    timing = dataclasses.replace(hw.timing, trefi=trefi, trfc=trfc)
    ctrl = dataclasses.replace(hw.controller, scheduler=scheduler, transaction_queue=tq,
                               command_queue=cq, coalesce_reads=coalesce, forward_writes=forward,
                               write_queue=wq, write_high_watermark=wq if high is None else high,
                               write_low_watermark=low, row_hit_cap=hit_cap)
    return dataclasses.replace(hw, org=org, timing=timing, controller=ctrl)


@pytest.fixture
def ddr4():
    return load_hardware("ddr4-2400")
