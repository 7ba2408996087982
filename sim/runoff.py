"""Rainfall-runoff: rain per minute -> discharge -> water level, per minute.

A catchment loses the first few mm of a storm and a fraction of the rest (runoff
coefficient), routes the effective rain through a Nash cascade of linear reservoirs
(so the level rises with a lag and recedes slowly) over a base flow, and a rating
curve turns discharge into stage. A reservoir station stores the inflow and spills
over a free weir: its level sits at the crest (the flood-limit level, 70 m in the seed
reservoir) and rises a little over it while a flood passes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Catchment:
    """``area_km2``; ``k_h``: each reservoir's time constant; ``n``: reservoirs in cascade."""

    area_km2: float = 120.0
    k_h: float = 2.5
    n: int = 3
    runoff_coeff: float = 0.45
    initial_loss_mm: float = 3.0
    recovery_h: float = 24.0  # dry hours after which the initial loss is back in full
    base_flow_m3s: float = 4.0

    def discharge(self, rain: list[float]) -> list[float]:
        """Discharge (m3/s) of each minute."""
        k = self.k_h * 60.0
        store = [0.0] * self.n  # mm of effective rain held in each reservoir
        loss_left = self.initial_loss_mm
        out: list[float] = []
        to_m3s = self.area_km2 * 1e3 / 60.0  # mm/min over the area -> m3/s
        for r in rain:
            if r > 0:
                taken = min(loss_left, r)
                loss_left -= taken
                eff = (r - taken) * self.runoff_coeff
            else:
                eff = 0.0
                loss_left = min(self.initial_loss_mm, loss_left + self.initial_loss_mm / (self.recovery_h * 60))
            inflow = eff
            for i in range(self.n):
                store[i] += inflow
                inflow = store[i] / k
                store[i] -= inflow
            out.append(self.base_flow_m3s + inflow * to_m3s)
        return out


@dataclass(frozen=True)
class Rating:
    """Stage (mm above datum) from discharge: Q = a (h - h0)^b, h in m."""

    h0_m: float = 0.3
    a: float = 12.0
    b: float = 1.6

    def level_mm(self, q: float) -> float:
        return float((self.h0_m + (max(q, 0.0) / self.a) ** (1 / self.b)) * 1000)


def river_level(rain: list[float], catchment: Catchment = Catchment(), rating: Rating = Rating()) -> list[float]:
    """Water level (mm) per minute at a river station."""
    return [rating.level_mm(q) for q in catchment.discharge(rain)]


@dataclass(frozen=True)
class Reservoir:
    """Level-pool routing over a free spillway.

    ``crest_m``: spillway crest = the flood-limit level; ``area_km2``: surface area
    (taken constant near the crest); ``weir``: C x L of the spillway (m^0.5/s x m);
    ``outlet_m3s``: the release through the outlet works.
    """

    crest_m: float = 70.0
    start_m: float = 69.98
    area_km2: float = 2.0
    weir: float = 150.0
    outlet_m3s: float = 3.5

    def level(self, inflow: list[float]) -> list[float]:
        """Reservoir level (mm) per minute from the inflow (m3/s) of each minute."""
        h = self.start_m
        area = self.area_km2 * 1e6
        out: list[float] = []
        for q in inflow:
            for _ in range(6):  # 10 s steps: the spill term is stiff near the crest
                spill = self.weir * (h - self.crest_m) ** 1.5 if h > self.crest_m else 0.0
                h += (q - self.outlet_m3s - spill) * 10.0 / area
            out.append(h * 1000)
        return out


def reservoir_level(rain: list[float], catchment: Catchment = Catchment(area_km2=300.0),
                    reservoir: Reservoir = Reservoir()) -> list[float]:
    """Water level (mm) per minute at the reservoir station."""
    return reservoir.level(catchment.discharge(rain))
