"""Labels in Chinese and English (the seed team reads Chinese; Chinese is the default)."""

from __future__ import annotations

from collections.abc import Callable

# key: (中文, English)
LABELS: dict[str, tuple[str, str]] = {
    "title": ("水文遥测中心", "Hydrology center"),
    "overview": ("总览", "Overview"),
    "alarms": ("告警", "Alarms"),
    "station": ("测站", "Station"),
    "stations": ("测站", "Stations"),
    "login": ("登录", "Sign in"),
    "logout": ("退出", "Sign out"),
    "user": ("用户名", "User"),
    "password": ("密码", "Password"),
    "bad_login": ("用户名或密码错误", "Wrong user name or password"),
    "too_many": ("尝试次数过多，请 {s} 秒后再试", "Too many attempts; try again in {s} s"),
    "state": ("状态", "State"),
    "last_seen": ("最后收到", "Last seen"),
    "never": ("从未", "never"),
    "rain_1h": ("1小时雨量", "Rain 1 h"),
    "rain_24h": ("24小时雨量", "Rain 24 h"),
    "level": ("水位", "Level"),
    "latest": ("最新值", "Latest values"),
    "stages": ("特征水位", "Stages"),
    "st_alarm": ("告警中", "in alarm"),
    "st_silent": ("无数据", "silent"),
    "st_fault": ("传感器故障", "sensor fault"),
    "st_battery": ("电压低", "low battery"),
    "st_late": ("迟到", "late"),
    "st_ok": ("正常", "reporting"),
    "stage_action": ("设防水位", "action stage"),
    "stage_warning": ("警戒水位", "warning stage"),
    "stage_guarantee": ("保证水位", "guarantee stage"),
    "stage_flood_limit": ("汛限水位", "flood-limit level"),
    "above": ("超", "above"),
    "hydrograph": ("水位过程线与雨量柱状图", "Hydrograph and hyetograph"),
    "no_data": ("无数据", "no data"),
    "completeness": ("到报率", "Completeness"),
    "expected": ("应到", "expected"),
    "received": ("实到", "received"),
    "battery_clock": ("电压与时钟", "Battery and clock"),
    "battery": ("电池电压", "Battery"),
    "clock_offset": ("时钟偏差", "Clock offset"),
    "events": ("事件", "Events"),
    "station_alarms": ("测站告警", "Station alarms"),
    "commands": ("命令", "Commands"),
    "queue_command": ("下发命令", "Queue a command"),
    "command_hint": ("例如 report_interval=300、test-report、reboot、status-report",
                     "e.g. report_interval=300, test-report, reboot, status-report"),
    "queued": ("已排队", "queued"),
    "no_spool": ("未配置网关队列 (--gateway-spool)", "no gateway spool configured (--gateway-spool)"),
    "active": ("未解除", "active"),
    "cleared": ("已解除", "cleared"),
    "kind": ("类型", "Kind"),
    "raised": ("发生时间", "Raised"),
    "cleared_at": ("解除时间", "Cleared"),
    "value": ("数值", "Value"),
    "threshold": ("阈值", "Threshold"),
    "ack": ("确认", "Acknowledge"),
    "acked": ("已确认", "Acknowledged"),
    "acked_by": ("确认人", "by"),
    "time": ("时间", "Time"),
    "detail": ("详情", "Detail"),
    "result": ("结果", "Result"),
    "waiting": ("等待发送", "waiting"),
    "sent": ("已发送", "sent"),
    "none": ("无", "none"),
    "h24": ("24小时", "24 h"),
    "d7": ("7天", "7 d"),
    "d30": ("30天", "30 d"),
    "rain_mm": ("雨量 (mm)", "Rain (mm)"),
    "level_m": ("水位 (m)", "Level (m)"),
    "role": ("角色", "Role"),
    "forbidden": ("无权执行此操作", "You may not do this"),
    "updated": ("更新于", "Updated"),
    "lang_other": ("English", "中文"),
    "el_rain": ("雨量", "rain"),
    "el_water_level": ("水位", "level"),
    "el_battery_voltage": ("电池电压", "battery"),
    "el_logger_temperature": ("机箱温度", "logger temperature"),
    "el_air_temperature": ("气温", "air temperature"),
    "el_water_temperature": ("水温", "water temperature"),
    "el_discharge": ("流量", "discharge"),
    "el_solar_voltage": ("太阳能电压", "solar voltage"),
    "el_signal_strength": ("信号强度", "signal"),
    "el_rain_daily": ("日雨量", "daily rain"),
}


def translator(lang: str) -> Callable[..., str]:
    """``t(key, **fields)``: the label in ``lang`` ("zh" or "en"); unknown keys show as is."""
    i = 1 if lang == "en" else 0

    def t(key: str, **fields: object) -> str:
        pair = LABELS.get(key)
        text = pair[i] if pair else key.removeprefix("el_")
        return text.format(**fields) if fields else text

    return t
