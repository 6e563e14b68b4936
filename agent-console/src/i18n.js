// Simplified Chinese first; English on request. Keys are the Chinese texts themselves, so a
// missing translation falls back to Chinese rather than to a key.

/** @type {Record<string, string>} */
const EN = {
  '预约': 'Appointments', '已预约': 'Booked', '已签到': 'Checked in', '已办理': 'Served', '爽约': 'No-show', '取消预约': 'Cancel appointment',
  '确认取消': 'Confirm', '预约已取消': 'Appointment cancelled', '当天没有预约': 'No appointments that day', '预约人': 'Booked by',
  '巡检': 'Inspections', '设置巡检计划': 'Set schedule', '巡检计划': 'Inspection schedule', '各服务点巡检': 'Inspections by point',
  '巡检周期': 'Rhythm', '巡检日': 'Weekday', '起始日期': 'First day', '宽限工作日': 'Grace (working days)', '宽限': 'grace',
  '每周': 'Weekly', '每两周': 'Every other week', '每月（首个）': 'Monthly (first)', '周一': 'Mon', '周二': 'Tue', '周三': 'Wed', '周四': 'Thu', '周五': 'Fri', '周六': 'Sat', '周日': 'Sun',
  '未到期': 'Upcoming', '待巡检': 'Due', '本期已巡检': 'Done this period', '应巡检日': 'Due on', '下次巡检': 'Next', '超期自': 'overdue since', '上次巡检': 'Last inspected',
  '从未巡检': 'never', '项不合格': 'failed', '全部合格': 'All passed', '巡检负责人账户': 'Inspector account', '记录': 'Records', '巡检记录': 'Inspections',
  '暂无巡检计划': 'No inspection schedules', '暂无巡检记录': 'No inspections yet', '巡检照片': 'Inspection photo', '照片无法加载': 'Photo unavailable',
  '已转整改': 'problems opened', '巡检计划已保存': 'Schedule saved', '留空为今天；每两周的计划按此日期确定周次': 'Empty: today; fixes the weeks of a bi-weekly schedule',
  '应巡检日之后几个工作日内未登记即为超期': 'Working days after the due day before it is overdue', '超期巡检和设备告警会进入该账户的任务列表': 'Overdue inspections and device alarms go to this account’s tasks',
  '不指定（仅按服务点登记的负责人通知）': 'None (notify the point’s registered inspector only)', '本服务点尚未设置巡检计划，仍可登记巡检。': 'No schedule for this point yet; inspections can still be recorded.',
  '合格': 'Pass', '不合格': 'Fail', '情况说明（不合格时填写）': 'What was found (for a fail)', '情况说明': 'note', '检查项': 'Item', '总体备注': 'Remarks', '现场照片': 'Photos',
  'JPEG 或 PNG，每张不超过 10 MB，最多 6 张': 'JPEG or PNG, ≤ 10 MB each, up to 6', '提交巡检记录': 'Record inspection', '最多 6 张照片': 'At most 6 photos',
  '照片不能超过 10 MB': 'Photos must be ≤ 10 MB', '巡检已登记': 'Inspection recorded', '项不合格已转整改': 'failed items sent for rectification', '登记本次巡检': 'Record an inspection', '最近巡检': 'Recent inspections',
  '一体机': 'Terminal', '双屏显示': 'Both screens', '麦克风': 'Microphone', '打印机与纸张': 'Printer and paper', '网络': 'Network', '公示信息': 'Posted notices', '环境卫生': 'Cleanliness',
  '帮办 · 坐席端': 'Bangban · Console',
  '受理中心': 'Acceptance centers', '全区': 'Whole district', '设置中心': 'Set center', '不属于任何中心': 'No center', '新增受理中心': 'Add center',
  '所辖街道': 'Streets', '暂无街道': 'No streets', '暂无受理中心': 'No centers', '未划入受理中心的街道': 'Streets of no center', '已属于': 'belongs to',
  '其他街道（每行一个）': 'Other streets (one per line)', '适用街道': 'Streets', '仅限': 'Only at', '全区可办': 'Everywhere',
  '受理中心负责所辖街道的服务点：来电先由本中心受理员接听，等待超时后由全区受理员接听。': 'A center serves its streets\' points: its own operators answer first, the whole district after the overflow wait.',
  '受理员优先接听本中心街道服务点的来电，其他中心的来电在等待超时后才会分配给他。': 'Operators answer their center\'s points first; another center\'s calls reach them only after the overflow wait.',
  '不选任何街道即全区可办；选中后只有这些街道的服务点一体机可以看到并办理该事项。': 'No street: offered everywhere; otherwise only the kiosks of these streets list and take it.',
  '通话录像': 'Call recordings', '居民同意后录制，仅值班主管可以查看，每次播放均记入审计日志': 'Recorded with the resident\'s consent; only supervisors see them; every playback is audited',
  '已按保存期限删除': 'Deleted under the retention rule', '播放': 'Play', '暂无录像': 'No recordings', '正在播放': 'Playing',
  '暂停': 'Pause', '进度': 'Position', '居民（服务点一体机）': 'Resident (terminal)',
  '● 录音录像中（居民已同意）': '● Recording (the resident agreed)',
  '搜索': 'Search', '分页': 'Pages', '上一页': 'Previous', '下一页': 'Next', '第': 'Page', '页': '', '共': 'Total',
  '全部街道': 'All streets', '有告警': 'With alarms', '告警终端': 'Terminals in alarm',
  '没有符合条件的记录': 'Nothing matches', '搜索编码、名称、居委会、地址': 'Search code, name, committee, address',
  '搜索终端或服务点名称': 'Search terminal or point', '搜索用户名或显示名': 'Search username or name', '搜索服务点或巡检负责人': 'Search point or inspector',
  '地图': 'Map', '服务点地图': 'Map of the points', '设备告警': 'Device alarm', '巡检超期': 'Inspection overdue', '当前闭馆': 'Closed now',
  '个服务点': 'points', '将鼠标移到服务点上或点击查看详情': 'Hover over or click a point for its details', '暂无服务点': 'No points',
  '未配置区界底图（BANGBAN_MAP_OUTLINE）': 'No district outline configured (BANGBAN_MAP_OUTLINE)', '当前不在开放时间': 'Outside opening hours now',
  '服务点管理': 'Manage points', '取消固定': 'Unpin',
  '接手办理': 'Take over', '已由您接手办理': 'The call is yours now', '由您接手办理？居民将转由您服务，原受理员退出通话。': 'Take over? The resident will be served by you and the operator leaves the call.',
  '邀请协办': 'Invite', '邀请协办（三方通话）': 'Invite a colleague (three-way call)', '条线中空闲的受理员': 'A free operator of a line',
  '发出邀请': 'Send invitation', '已发出邀请': 'Invitation sent', '邀请您协助办理': 'invites you to help',
  '加入通话': 'Join the call', '协办中': 'Helping in a call', '离开通话': 'Leave the call', '协办': 'Colleague',
  '已加入通话': 'joined the call', '未接受邀请': 'did not accept the invitation',
  '监听': 'Monitor', '耳语': 'Whisper', '插话': 'Barge in', '退出监听': 'Stop monitoring', '正在监听': 'Monitoring',
  '您能看到、听到双方，双方听不到您': 'You see and hear both sides; neither hears you',
  '只有受理员能听到您': 'Only the operator hears you', '居民和受理员都能听到您': 'The resident and the operator hear you',
  '确定结束该通话？': 'End this call?', '已结束该通话': 'You ended the call', '未获得麦克风权限': 'No microphone permission',
  '正在耳语（只有您能听到）': 'is whispering (only you hear)', '已插话（居民也能听到）': 'has barged in (the resident hears too)',
  '社区事务受理服务中心': 'Community Affairs Acceptance Center',
  '登录': 'Sign in', '用户名': 'Username', '密码': 'Password', '退出': 'Sign out', '正在登录…': 'Signing in…',
  '用户名或密码错误': 'Wrong username or password',
  '静邻帮办 · 远程虚拟窗口': 'Jinglin Bangban · Remote virtual window',
  '受理员': 'Operator', '值班主管': 'Supervisor', '系统管理员': 'Administrator', '服务点工作人员': 'Point staff',
  '受理台': 'Desk', '监控': 'Monitor', '服务点': 'Points', '终端': 'Terminals', '账户': 'Accounts', '条线与事项': 'Lines & items', '审计日志': 'Audit log',
  '已连接': 'Connected', '正在连接…': 'Connecting…', '连接中断，正在重连…': 'Connection lost, reconnecting…', '已断开': 'Disconnected',
  '空闲': 'Available', '暂离': 'Away', '离线': 'Offline', '振铃中': 'Ringing', '通话中': 'In call', '整理中': 'Wrap-up',
  '开始接件': 'Go available', '暂停接件': 'Go away',
  '我的状态': 'My status', '排队情况': 'Queue', '今日办件': "Today's sessions",
  '等待': 'Waiting', '优先': 'Priority', '最长等待': 'Longest wait', '暂无排队': 'Nobody waiting',
  '等待来电': 'Waiting for calls', '点击“开始接件”后，新来电会响铃提示。': 'Press “Go available”; new calls will ring.',
  '您已暂离，不会分配来电。': 'You are away; no calls will be offered.',
  '来电': 'Incoming call', '接听': 'Accept', '拒绝': 'Decline', '转来': 'Transferred from',
  '秒后转给其他受理员': 's until it goes to another operator',
  '居民': 'Resident', '身份证号': 'ID number', '事项': 'Item', '条线': 'Line', '号码': 'Number', '已等待': 'Waited',
  '优先级': 'Priority', '普通': 'Normal', '老年人': 'Elderly', '残疾人': 'Disabled', '孕妇': 'Pregnant',
  '静音': 'Mute', '取消静音': 'Unmute', '关闭摄像头': 'Camera off', '开启摄像头': 'Camera on', '摄像头': 'Camera',
  '共享屏幕': 'Share screen', '停止共享': 'Stop sharing', '保持': 'Hold', '恢复通话': 'Resume', '转办': 'Transfer', '结束通话': 'End call',
  '通话已保持，双方音视频已暂停': 'On hold: audio and video paused on both sides',
  '居民端网络中断，等待重连': 'Resident’s link dropped, waiting to reconnect', '正在恢复连接…': 'Restoring connection…',
  '正在建立视频连接…': 'Connecting video…', '正在共享屏幕（居民副屏显示）': 'Sharing screen (resident’s second screen)',
  '本人画面': 'Me', '未获得摄像头或麦克风权限': 'No camera or microphone permission',
  '办件信息': 'Ticket', '所需材料': 'Required materials', '必需': 'required', '可选': 'optional',
  '现场扫描上传': 'Scan at point', '原件事后寄送': 'Courier original later', '现场打印签字': 'Print & sign at point',
  '已收材料': 'Materials received', '跳过顺序，接听此号': 'Take this ticket out of turn', '查看完整': 'Reveal', '查看完整信息（将记入审计日志）': 'Show in full (audited)', '查看完整身份证号将记入审计日志，确定查看吗？': 'Revealing the full ID number is recorded in the audit log. Continue?', '协助人员': 'Assisted by', '居委会工作人员': 'committee staff', '请求扫描': 'Ask for a scan', '已请求扫描': 'Scan requested', '打印': 'Print', '暂无材料': 'No materials yet', '通过': 'Accept', '退回': 'Reject', '查看': 'Open',
  '已上传': 'Uploaded', '已查看': 'Viewed', '已通过': 'Accepted', '已退回': 'Rejected',
  '退回原因': 'Reason for rejection', '远程打印': 'Remote printing', '选择 PDF 表单并发送到服务点打印': 'Choose a PDF form to print at the point',
  '份数': 'Copies', '发送打印': 'Send to printer', '取消打印': 'Cancel',
  '待领取': 'Pending', '已领取': 'Claimed', '排队中': 'Queued', '打印中': 'Printing', '已完成': 'Completed', '失败': 'Failed', '已取消': 'Cancelled', '已过期': 'Expired',
  '转办给': 'Transfer to', '条线队列': 'Line queue', '指定受理员': 'Operator', '转办说明': 'Note', '确定转办': 'Transfer',
  '办理结果': 'Outcome', '备注': 'Notes', '提交办理结果': 'Submit outcome', '通话已结束': 'Call ended',
  '办结': 'Completed', '已受理待审批': 'Accepted, pending approval', '需补材料': 'Materials needed', '转线下办理': 'Referred offline', '不予受理': 'Rejected',
  '时间': 'Time', '时长': 'Duration', '评价': 'Rating', '结果': 'Outcome', '今日暂无办件': 'No sessions today',
  '非常满意': 'Very satisfied', '满意': 'Satisfied', '基本满意': 'Fair', '不满意': 'Dissatisfied', '非常不满意': 'Very dissatisfied',
  '今日服务概况': "Today's service", '60秒内首次响应': 'First response ≤ 60 s', '平均等待': 'Average wait', '90%等待不超过': '90th percentile wait',
  '解决率': 'Resolution rate', '取号': 'Tickets', '已服务': 'Served', '差评': 'Negative ratings', '目标': 'target',
  '评价分布': 'Ratings', '近7日': 'Last 7 days', '日期': 'Date', '各条线排队': 'Queues by line', '受理员状态': 'Operators',
  '待整改差评': 'Open rectifications', '回访': 'Call back', '回访结果': 'Call-back result', '整改措施': 'Measures taken', '到期': 'Due', '已超期': 'Overdue',
  '暂无待整改事项': 'Nothing to rectify', '终端状态': 'Terminals', '最近在线': 'Last seen', '从未在线': 'never',
  '终端健康': 'Terminal health', '在线': 'Online', '离线告警': 'OFFLINE', '打印机故障': 'Printer fault', '存储将满': 'Storage nearly full', '存储已满': 'Storage full', '终端占用': 'Terminal uses', '起': '', '自': 'since',
  '打印机': 'Printer', '扫描仪': 'Scanner', '磁盘': 'Disk', '版本': 'Version', '剩余': 'free', '未上报': 'no report', '正常': 'OK', '故障': 'Fault', '未启用': 'Disabled',
  '已停止': 'Stopped', '无法连接': 'Unreachable', '告警': 'Alarms', '缺纸': 'Out of paper', '卡纸': 'Paper jam', '纸张将尽': 'Paper low',
  '盖板未关': 'Cover open', '墨粉用尽': 'Toner empty', '墨粉不足': 'Toner low', '耗材用尽': 'Supplies empty', '耗材不足': 'Supplies low',
  '已暂停': 'Paused', '脱机': 'Offline', '纸盒缺失': 'Tray missing', '暂停接收任务': 'Not accepting jobs', '通话中的终端': 'in a call',
  '待激活': 'Pending', '在用': 'Active', '已注销': 'Revoked', '状态': 'Status', '名称': 'Name', '编码': 'Code',
  '新增服务点': 'Add point', '修改': 'Edit', '关闭': 'Close', '重新开放': 'Reopen', '历史': 'History', '关闭原因': 'Reason for closing',
  '开放': 'Open', '已关闭': 'Closed', '街道': 'Street', '居委会': 'Committee', '类型': 'Kind', '地址': 'Address',
  '经度': 'Longitude', '纬度': 'Latitude', '开放时间': 'Opening hours', '巡检负责人': 'Inspector', '联系电话': 'Phone',
  '园区': 'Park', '楼宇': 'Office building', '党群服务中心': 'Party service center', '保存': 'Save', '取消': 'Cancel', '确定': 'OK',
  '登记终端': 'Register terminal', '所属服务点': 'Point', '激活码': 'Enrollment code', '新激活码': 'New code', '注销': 'Revoke', '注销原因': 'Reason',
  '激活码只显示这一次，请抄送给服务点。': 'The code is shown only once; pass it to the point.', '有效期至': 'Valid until',
  '新增账户': 'Add account', '显示名': 'Display name', '角色': 'Role', '技能（可受理条线）': 'Skills (lines served)', '启用': 'Active', '停用': 'Disabled', '设置技能': 'Skills', '重置密码': 'Reset password', '新密码': 'New password',
  '新增条线': 'Add line', '新增事项': 'Add item', '可远程办理': 'Remote', '材料清单': 'Materials list', '流转方式': 'Transfer', '说明': 'Note', '添加材料': 'Add material', '排序': 'Order',
  '校验审计链': 'Verify chain', '审计链完整': 'Audit chain intact', '审计链已损坏': 'Audit chain BROKEN', '操作': 'Action', '操作人': 'Actor', '对象': 'Target', '来源': 'Source', '更早': 'Older', '最新': 'Newest',
  '已检查': 'checked', '条': 'entries', '加载失败': 'Failed to load', '已保存': 'Saved', '刷新': 'Refresh',
  '居委会工作人员请使用服务点终端。': 'Point staff use the terminal at the point.',
  '操作失败': 'Failed', '通话已转办': 'Call transferred', '来电已取消': 'Call withdrawn', '居民已离开': 'Resident left', '已被其他受理员接听': 'Taken by another operator',
  '未选择文件': 'No file chosen', '选择文件': 'Choose file', '已转办': 'Transferred', '通话和整理期间不能切换语言': 'Cannot switch language during a call or wrap-up',
  '登录已过期，请重新登录': 'Session expired, please sign in again', '该账号已在其他地方登录，本页已断开': 'Signed in elsewhere; this page is disconnected', '账号已停用': 'Account disabled',
  '受理员结束通话': 'Operator ended the call', '连接中断': 'Connection lost', '主管结束通话': 'Ended by supervisor', '服务器重启': 'Server restart',
  '响铃超时，已设为暂离': 'Ring timed out; you are now away',
  '视频编码': 'Video codec', 'VP8（默认）': 'VP8 (default)', 'H.264（本机硬件解码时选用）': 'H.264 (where this PC decodes it in hardware)',
  '视频编码已设置，下次通话起生效': 'Video codec saved; it applies from the next call', '当前': 'Now', '人': '', '分钟': 'min',
  // Cases (工单、回访、两张清单、上门办、报表)
  '工单': 'Orders', '超期督办': 'Overdue', '两张清单': 'Two lists', '上门办审核': 'Home visits', '上门办': 'Home visits', '报表': 'Reports',
  '我的工单': 'My work orders', '本服务点工单': "This point's work orders", '办理中': 'Open', '已办结': 'Closed', '全部': 'All', '登记工单': 'New order',
  '工单号': 'Order', '环节': 'Stage', '承办': 'Handled by', '到期（北京时间）': 'Due (China time)', '暂无工单': 'No work orders',
  '超期提级': 'Escalated: overdue', '临期提级': 'Escalated: due today', '已提级督办': 'Escalated', '已提级至值班主管': 'Raised to the supervisors',
  '要求': 'Requirement', '本次通话已存': 'Stored in the call', '份': 'file(s)', '待补': 'Outstanding', '待补（已有扫描件待核）': 'Outstanding (a scan awaits review)', '已提交': 'Submitted',
  '转为工单': 'Open a work order', '事由': 'Matter', '办理时限': 'Time limit', '办件编号': 'Case number', '待补材料': 'Outstanding materials',
  '创建工单': 'Create order', '暂不创建': 'Not now', '已创建工单': 'Work order created', '创建工单失败': 'Could not create the work order',
  '当日办结': 'Same day', '5个工作日': '5 working days', '10个工作日': '10 working days', '剩': '', '个工作日': 'working days left',
  '超期': 'Overdue', '临期': 'Due soon', '已挂起': 'Suspended', '办理记录': 'History', '下一步': 'Next step', '提交': 'Submit', '系统': 'system',
  '回访任务': 'Call-backs', '待回访': 'To do', '已回访': 'Done', '记录回访': 'Record', '居民是否满意': 'Was the resident satisfied?',
  '暂无待回访任务': 'No call-backs to make', '暂无记录': 'Nothing yet', '超期工单': 'Overdue orders', '临期工单': 'Orders due soon', '超期回访': 'Overdue call-backs',
  '问题清单': 'Problems', '整改清单': 'Rectifications', '已销号': 'Closed', '登记问题': 'New problem', '责任人': 'Owner', '整改期限': 'Deadline',
  '录入措施': 'Measures', '销号': 'Close', '清单为空': 'The list is empty', '巡查': 'Inspection', '抽查': 'Spot check',
  '上门办申请': 'Home-visit requests', '申请上门办': 'Request a home visit', '居民情况': 'Situation', '安排': 'Schedule', '同意': 'Approve', '不同意': 'Refuse',
  '安排上门': 'Schedule', '登记结果': 'Outcome', '登记评价': 'Rating', '暂无上门办申请': 'No home-visit requests',
  '日报告': 'Daily', '周通报': 'Weekly', '月汇总': 'Monthly', '按服务点': 'By point', '按街道': 'By street', '按条线': 'By line', '下载 Excel': 'Download Excel',
  // 本服务点 (committee staff's home page)
  '本服务点': 'My point', '开放中': 'Open now', '未开放': 'Closed now', '无告警': 'No alarms', '今日取号': "Today's tickets",
  '我协助的': 'Helped by me', '今日打印': "Today's printing", '办理中工单': 'Open orders', '终端与打印机': 'Terminal and printer',
  '本服务点暂无终端': 'No terminal at this point', '取号时间': 'Taken at', '我协助': 'Helped by me', '今日暂无取号': 'No tickets today',
  '今日暂无打印任务': 'No print jobs today', '本账号未绑定服务点，请联系系统管理员。': 'This account has no point; ask the administrator.',
  '等待中': 'Waiting', '已离开': 'Left', '差评整改': 'Rectification', '好评抽样': 'Sampled rating', '受理': 'Accepted', '分类': 'Classified',
  '满意率': 'Satisfaction', '完成回访': 'Call-backs done', '新增工单': 'Orders opened', '办结工单': 'Orders closed', '取号与服务': 'Tickets and served', '本期暂无数据': 'No data for this period',
};

let current = (typeof localStorage !== 'undefined' && localStorage.getItem('bangban.lang')) === 'en' ? 'en' : 'zh';

export const lang = () => current;
/** @param {'zh'|'en'} l */
export function setLang(l) {
  current = l;
  localStorage.setItem('bangban.lang', l);
  document.documentElement.lang = l === 'en' ? 'en' : 'zh-CN';
}

/** @param {string} zh @param {Record<string, string | number>} [params] */
export function t(zh, params) {
  let s = current === 'en' ? (EN[zh] ?? zh) : zh;
  if (params) for (const [k, v] of Object.entries(params)) s = s.replaceAll(`{${k}}`, String(v));
  return s;
}

export const ROLE = { admin: '系统管理员', supervisor: '值班主管', operator: '受理员', staff: '服务点工作人员', terminal: '终端' };
export const OP_STATE = { offline: '离线', available: '空闲', ringing: '振铃中', in_call: '通话中', wrap_up: '整理中', away: '暂离' };
export const PRIORITY = { normal: '普通', elderly: '老年人', disabled: '残疾人', pregnant: '孕妇' };
export const OUTCOME = {
  completed: '办结', accepted_pending_approval: '已受理待审批', needs_materials: '需补材料', referred_offline: '转线下办理', rejected: '不予受理',
};
export const RATING = { very_satisfied: '非常满意', satisfied: '满意', basic: '基本满意', dissatisfied: '不满意', very_dissatisfied: '非常不满意' };
export const TRANSFER = { scan: '现场扫描上传', courier: '原件事后寄送', print_sign: '现场打印签字' };
export const MATERIAL_STATUS = { uploaded: '已上传', viewed: '已查看', accepted: '已通过', rejected: '已退回' };
export const PRINT_STATE = {
  pending: '待领取', claimed: '已领取', queued: '排队中', printing: '打印中', completed: '已完成', failed: '失败', cancelled: '已取消', expired: '已过期',
};
export const POINT_KIND = { committee: '居委会', park: '园区', building: '楼宇', party_center: '党群服务中心' };
export const TERMINAL_STATUS = { pending: '待激活', active: '在用', revoked: '已注销' };
export const DEVICE_STATE = { ok: '正常', fault: '故障', disabled: '未启用' };
export const PRINTER_STATE = { idle: '空闲', processing: '打印中', stopped: '已停止', unreachable: '无法连接', disabled: '未启用' };
/** IPP printer-state-reasons without their -error / -warning / -report suffix. */
export const PRINTER_REASON = {
  'media-empty': '缺纸', 'media-needed': '缺纸', 'media-jam': '卡纸', 'media-low': '纸张将尽', 'door-open': '盖板未关', 'cover-open': '盖板未关',
  'toner-empty': '墨粉用尽', 'toner-low': '墨粉不足', 'marker-supply-empty': '耗材用尽', 'marker-supply-low': '耗材不足',
  paused: '已暂停', offline: '脱机', 'input-tray-missing': '纸盒缺失', 'printer-not-accepting': '暂停接收任务',
};
export const TICKET_STATUS = { waiting: '等待中', in_call: '通话中', served: '已服务', cancelled: '已取消', abandoned: '已离开' };
export const ORDER_STATE = { accepted: '受理', classified: '分类', transferred: '转办', completed: '办结', closed: '已关闭' };
export const CALLBACK_KIND = { rectification: '差评整改', order: '工单', good_rating: '好评抽样', home_visit: '上门办' };
