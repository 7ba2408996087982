"""The gateway: stations (serial, TCP) -> verify -> durable spool -> ACK; spool -> MQTT.

Modules: :mod:`.pipeline` (sans-IO verification, dedupe, ACKs), :mod:`.spool`
(SQLite WAL, group commits), :mod:`.inputs` (TCP server, serial ports),
:mod:`.forwarder` (aiomqtt QoS 1), :mod:`.commands`, :mod:`.metrics`,
:mod:`.config`, :mod:`.service` (the process), :mod:`.main` (CLI entries).
"""
