// Dates, times and durations in Chinese conventions (China Standard Time), or English.
import { lang } from './i18n.js';

const TZ = 'Asia/Shanghai';
const cache = new Map();
/** @param {Intl.DateTimeFormatOptions} o */
function dtf(o) {
  const key = lang() + JSON.stringify(o);
  if (!cache.has(key)) cache.set(key, new Intl.DateTimeFormat(lang() === 'en' ? 'en-GB' : 'zh-CN', { timeZone: TZ, ...o }));
  return cache.get(key);
}

/** 14:05 @param {number | null | undefined} ms */
export const time = (ms) => (ms == null ? '—' : dtf({ hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(ms));
/** 14:05:09 @param {number | null | undefined} ms */
export const timeSec = (ms) => (ms == null ? '—' : dtf({ hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' }).format(ms));
/** 2026年5月3日 / 3 May 2026 @param {number | null | undefined} ms */
export const date = (ms) => (ms == null ? '—' : dtf({ year: 'numeric', month: 'long', day: 'numeric' }).format(ms));
/** 2026年5月3日 星期日 @param {number} ms */
export const dateWeekday = (ms) => dtf({ year: 'numeric', month: 'long', day: 'numeric', weekday: 'long' }).format(ms);
/** 2026/05/03 14:05 @param {number | null | undefined} ms */
export const dateTime = (ms) =>
  ms == null ? '—' : dtf({ year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(ms);

/** 3分12秒 / 1小时5分 / 45秒; English: 3 min 12 s @param {number | null | undefined} secs */
export function duration(secs) {
  if (secs == null || !Number.isFinite(secs)) return '—';
  const s = Math.max(0, Math.round(secs));
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
  if (lang() === 'en') {
    if (hh) return `${hh} h ${mm} min`;
    if (mm) return ss ? `${mm} min ${ss} s` : `${mm} min`;
    return `${ss} s`;
  }
  if (hh) return `${hh}小时${mm ? mm + '分' : ''}`;
  if (mm) return `${mm}分${ss ? ss + '秒' : '钟'}`;
  return `${ss}秒`;
}

/** mm:ss call clock @param {number} secs */
export function clock(secs) {
  const s = Math.max(0, Math.floor(secs));
  const m = Math.floor(s / 60);
  return `${String(m).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

/** 87.5% @param {number | null | undefined} v */
export const pct = (v) => (v == null ? '—' : `${(Math.round(v * 10) / 10).toFixed(1)}%`);

/** Start of today in CST, unix ms. */
export function todayStart() {
  const now = Date.now();
  const cst = now + 8 * 3600e3;
  return now - (cst % 86400e3);
}

/** 37.2 GB @param {number | null | undefined} bytes */
export function bytes(bytes) {
  if (bytes == null || !Number.isFinite(bytes)) return '—';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = bytes, i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i ? v.toFixed(1) : v} ${units[i]}`;
}
