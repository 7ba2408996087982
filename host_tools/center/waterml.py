"""OGC WaterML 2.0 MeasurementTimeseries documents, and their schema with no network.

One ``wml2:Collection`` holds one ``om:OM_Observation`` per series; its result is a
``wml2:MeasurementTimeseries`` with one ``MeasurementTVP`` per interval. A missing
interval is ``<wml2:value xsi:nil="true"/>`` with the reason in the point's metadata
(``wml2:nilReason``, an OGC nil-reason URI: ``missing``, or ``inapplicable`` for a
sensor ``fault``; see :data:`NIL_REASON`). Every point carries its quality as
``wml2:quality``: the href is the WaterML 2.0 quality term that fits, the title is
hydrolink's own code (SPEC §5.3).

:func:`schema` loads the vendored XSDs in ``schemas/`` (see its README) through an
lxml resolver that refuses every URL it has no copy of, so validation never reaches
for the network.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from host_tools.center.series import Reading, SeriesMeta

SCHEMAS = Path(__file__).with_name("schemas")
ROOT_XSD = SCHEMAS / "schemas.opengis.net" / "waterml" / "2.0" / "waterml2.xsd"

NS = {
    "wml2": "http://www.opengis.net/waterml/2.0",
    "gml": "http://www.opengis.net/gml/3.2",
    "om": "http://www.opengis.net/om/2.0",
    "xlink": "http://www.w3.org/1999/xlink",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
}
_OGC_NIL = "http://www.opengis.net/def/nil/OGC/0/"
NIL_REASON = {"missing": "missing", "fault": "inapplicable"}
"""hydrolink quality with no value -> OGC nil reason (``fault``: the sensor gave none)."""
_WML_QUALITY = {
    "good": "good", "suspect": "suspect", "out_of_range": "poor", "manual": "good",
    "maintenance": "suspect", "missing": "missing", "fault": "missing",
}
"""hydrolink quality -> the WaterML 2.0 quality term (its code list, 10-126r4 Table 18)."""
_QUALITY_URI = "http://www.opengis.net/def/waterml/2.0/quality/"
_PROPERTY_URN = "urn:hydrolink:element:"
_INTERP = "http://www.opengis.net/def/waterml/2.0/interpolationType/"
_UOM = {"m": "m", "mm": "mm", "V": "V", "degC": "Cel", "m3/s": "m3/s", "dBm": "dB[mW]"}
"""hydrolink units -> UCUM codes (what ``wml2:uom/@code`` expects)."""


def _iso(t: int) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _a(value: str) -> str:
    return quoteattr(value)


def document(series: Sequence[tuple[SeriesMeta, Sequence[Reading]]], *, generated: int,
             start: int, end: int, kinds: dict[str, str] | None = None) -> str:
    """A WaterML 2.0 Collection with one observation per series.

    Args:
        series: (metadata, regular readings) per series, readings oldest first.
        generated: UNIX time the document is made (``generationDate``).
        start: first time asked for (the collection's temporal extent).
        end: last time asked for.
        kinds: element name -> ``"total"`` or ``"instant"`` (elements.csv), which
            picks the interpolation type (preceding total vs continuous).

    Returns:
        The document as text (UTF-8 declared).
    """
    kinds = kinds or {}
    out: list[str] = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        "<wml2:Collection " + " ".join(f"xmlns:{p}={_a(u)}" for p, u in NS.items()),
        ' xsi:schemaLocation="http://www.opengis.net/waterml/2.0 '
        'http://schemas.opengis.net/waterml/2.0/waterml2.xsd" gml:id="hydrolink.collection">\n',
        '  <wml2:metadata><wml2:DocumentMetadata gml:id="hydrolink.doc">'
        f"<wml2:generationDate>{_iso(generated)}</wml2:generationDate>"
        "<wml2:generationSystem>hydrolink</wml2:generationSystem>"
        "</wml2:DocumentMetadata></wml2:metadata>\n",
        '  <wml2:temporalExtent><gml:TimePeriod gml:id="hydrolink.extent">'
        f"<gml:beginPosition>{_iso(start)}</gml:beginPosition>"
        f"<gml:endPosition>{_iso(end)}</gml:endPosition></gml:TimePeriod></wml2:temporalExtent>\n",
    ]
    for i, (meta, rows) in enumerate(series):
        out.append(_observation(i, meta, rows, generated, start, end, kinds.get(meta.element, "instant")))
    out.append("</wml2:Collection>\n")
    return "".join(out)


def _observation(i: int, meta: SeriesMeta, rows: Sequence[Reading], generated: int,
                 start: int, end: int, kind: str) -> str:
    gid = f"s{meta.station}.{meta.element}.{i}"
    uom = _UOM.get(meta.unit, meta.unit)
    interp = ("TotalPrec", "Preceding total") if kind == "total" else ("Continuous", "Instantaneous")
    first = rows[0].time if rows else start
    last = rows[-1].time if rows else end
    head = (
        "  <wml2:observationMember>\n"
        f"   <om:OM_Observation gml:id={_a(gid + '.obs')}>\n"
        f"    <gml:description>{escape(meta.element)} at station {meta.station} "
        f"({escape(meta.name)}), record interval {meta.interval_s} s, local zone "
        f"{escape(meta.timezone)}; times in UTC</gml:description>\n"
        f"    <om:phenomenonTime><gml:TimePeriod gml:id={_a(gid + '.pt')}>"
        f"<gml:beginPosition>{_iso(first)}</gml:beginPosition>"
        f"<gml:endPosition>{_iso(last)}</gml:endPosition></gml:TimePeriod></om:phenomenonTime>\n"
        f"    <om:resultTime><gml:TimeInstant gml:id={_a(gid + '.rt')}>"
        f"<gml:timePosition>{_iso(generated)}</gml:timePosition></gml:TimeInstant></om:resultTime>\n"
        f"    <om:procedure xlink:href={_a(f'urn:hydrolink:station:{meta.station}:sensor:{meta.element}')}/>\n"
        f"    <om:observedProperty xlink:href={_a(_PROPERTY_URN + meta.element)} "
        f"xlink:title={_a(meta.element)}/>\n"
        f"    <om:featureOfInterest xlink:href={_a(f'urn:hydrolink:station:{meta.station}')} "
        f"xlink:title={_a(meta.name)}/>\n"
        "    <om:result>\n"
        f"     <wml2:MeasurementTimeseries gml:id={_a(gid + '.ts')}>\n"
        "      <wml2:defaultPointMetadata><wml2:DefaultTVPMeasurementMetadata>"
        f"<wml2:uom code={_a(uom)}/>"
        f"<wml2:interpolationType xlink:href={_a(_INTERP + interp[0])} xlink:title={_a(interp[1])}/>"
        "</wml2:DefaultTVPMeasurementMetadata></wml2:defaultPointMetadata>\n"
    )
    pts = [head]
    for r in rows:
        pts.append(_point(r))
    pts.append("     </wml2:MeasurementTimeseries>\n    </om:result>\n   </om:OM_Observation>\n"
               "  </wml2:observationMember>\n")
    return "".join(pts)


def _point(r: Reading) -> str:
    q = r.quality
    meta = (f"<wml2:quality xlink:href={_a(_QUALITY_URI + _WML_QUALITY.get(q, 'unchecked'))} "
            f"xlink:title={_a(q)}/>")
    if r.value is None:
        reason = NIL_REASON.get(q, "missing")
        meta += f"<wml2:nilReason xlink:href={_a(_OGC_NIL + reason)} xlink:title={_a(reason)}/>"
        value = '<wml2:value xsi:nil="true"/>'
    else:
        value = f"<wml2:value>{r.value!r}</wml2:value>"
    return (f"      <wml2:point><wml2:MeasurementTVP><wml2:time>{_iso(r.time)}</wml2:time>{value}"
            f"<wml2:metadata><wml2:TVPMeasurementMetadata>{meta}</wml2:TVPMeasurementMetadata>"
            "</wml2:metadata></wml2:MeasurementTVP></wml2:point>\n")


class _Offline:
    """An lxml resolver serving the vendored schemas and refusing every other URL."""

    def __new__(cls) -> Any:
        from lxml import etree

        class Resolver(etree.Resolver):  # type: ignore[misc]
            def resolve(self, url: str, pubid: str | None, context: Any) -> Any:
                for scheme in ("http://", "https://"):
                    if url.startswith(scheme):
                        path = SCHEMAS / url[len(scheme):]
                        if path.is_file():
                            return self.resolve_filename(str(path), context)
                        raise OSError(f"schema {url} is not vendored in {SCHEMAS}")
                return None

        return Resolver()


@cache
def schema() -> Any:
    """The WaterML 2.0 schema (``lxml.etree.XMLSchema``), built from the vendored files."""
    from lxml import etree

    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(_Offline())
    return etree.XMLSchema(etree.parse(str(ROOT_XSD), parser))


def validate(text: str | bytes) -> list[str]:
    """Schema errors of a WaterML 2.0 document (empty when it is valid)."""
    from lxml import etree

    data = text.encode() if isinstance(text, str) else text
    doc = etree.fromstring(data, etree.XMLParser(no_network=True, resolve_entities=False))
    s = schema()
    if s.validate(doc):
        return []
    return [f"line {e.line}: {e.message}" for e in s.error_log]
