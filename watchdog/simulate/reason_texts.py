"""Reason-text templates per reason kind, and the category each kind stands for.

Templates are `str.format` strings; the placeholders are filled per order by `reasons.py`
(`{id}` the customer's raw ID number, `{phone}` a raw phone, `{num}` the number being
opened, `{other_no}` another order number, `{cs}` the carrier's short name, `{sys}` its
BSS/CRM system, ...). Literal braces are doubled. A kind is a cause at one stage; several
kinds share a category. Weights are relative within a kind.
"""

from __future__ import annotations

T = tuple[tuple[float, str], ...]

KIND_CATEGORY: dict[str, str] = {
    "compliance": "compliance",
    "compliance_carrier": "compliance",
    "operator_error": "operator_error",
    "customer": "customer_initiated",
    "customer_refused": "customer_initiated",
    "timeout_unpaid": "customer_initiated",
    "timeout_inactive": "customer_initiated",
    "duplicate": "duplicate",
    "supply_stock": "supply_shortage",
    "supply_logistics": "supply_shortage",
    "system": "system_fault",
    "opaque": "unknown",
    # incident themes
    "outage": "system_fault",
    "signature": "system_fault",
    "number_pool": "supply_shortage",
    "region_pause": "compliance",
    "region_logistics": "supply_shortage",
    "takedown": "supply_shortage",
    "policy": "compliance",
    "abuse": "compliance",
    "form_parser": "operator_error",
    # excluded from monitoring (model.EXCLUDE)
    "test": "exclude",
    "bulk": "exclude",
}

TEMPLATES: dict[str, T] = {
    "compliance": (
        (8, "一证五号校验未通过"),
        (5, "一证五号超限"),
        (1, "一证五号超线"),
        (6, "【全网一证多号】校验: 证件号码【{id}】实名制开户的数量已达到最大值【5个】，"
            "请更换其它证件！"),
        (3, "证件号码{id}名下号码已达上限(5)"),
        (4, "年龄不符"),
        (3, "未满16周岁"),
        (3, "该产品仅限18-28岁，客户年龄{age}岁"),
        (2, "年龄超出{product}办理范围"),
        (4, "实名认证未通过"),
        (2, "二次实人认证未通过"),
        (2, "人脸识别失败，非本人"),
        (3, "收货地址属于高风险地区，暂不发货"),
        (2, "高危地区禁发"),
        (2, "断卡行动 暂停办理"),
        (3, "涉诈风险用户"),
        (2, "该客户有号码有往月欠费，不能再次使用该证件办理开户业务"),
        (1, "该客户名下号码{phone}有往月欠费{n}元，不能办理"),
        (2, "黑名单用户"),
        (2, "客户不知情，疑似废单"),
        (1, "代理转单，违规"),
        (1, "代理违规推广(地推)"),
        (2, "不符合办理条件"),
        (1, "政策原因"),
        (1, "证件类型不支持（军官证/港澳通行证）"),
        (1, "身份信息被冒用（客户报案）"),
        (2, "30天内已办理过同运营商号卡"),
        (1, "库存充足，证件审核不通过"),
        (1, "國政通校驗不通過"),
        (1, "审核不通过：证件已过有效期"),
        (1, "Exceeds per-ID SIM limit (5)"),
        (1, "Age restriction not met"),
        (1, "Fraud risk - order blocked"),
        (1, '{{"resultCode":"ESS-3006","resultMsg":"【全网一证多号】校验不通过"}}'),
    ),
    "compliance_carrier": (
        (4, "运营商返回：[ESS-3006]【全网一证多号】校验不通过"),
        (3, "{sys}返回：实名制验证本地库验证不通过(4034)"),
        (2, "{cs}审核不通过：该证件存在不良记录"),
        (2, "{sys}：用户在黑名单中，禁止开户"),
        (1, "运营商返回：[ESS-3006]【全网一证多号】校验不通过；"
            "另：收货地址校验未通过(ADDR_INVALID)"),
        (2, "运营商风控拦截：高风险用户"),
        (1, "非本人激活"),
    ),
    "operator_error": (
        (8, "姓名与身份证号码不一致"),
        (4, "身份证号码错误"),
        (2, "身分证号码有误，请核实后重新提交"),
        (3, "证件号码格式不正确"),
        (2, "身份证末位X请用大写"),
        (5, "地址不详"),
        (3, "收货地址不详细，请精确到门牌号"),
        (2, "地址不详（请补充门牌号）"),
        (1, "地址含学校宿舍，需补充楼栋号"),
        (3, "信息填写不完整"),
        (2, "手机号格式不正确"),
        (1, "联系电话{phone}为空号"),
        (2, "手持照不清晰/未露全脸"),
        (2, "身份证照片与填写信息不符"),
        (1, "姓名中包含空格或特殊字符"),
        (1, "姓名含生僻字，请核对"),
        (2, "代理误操作撤单"),
        (1, "客户名字写错了 重新下"),
        (1, "信息有误，已让客户重新下单"),
        (1, "审合不通过：证件信息有误"),
        (1, "收件人电话非申请人本人"),
        (1, "照片补传链接已失效"),
        (1, "证件待补充超时，订单关闭"),
        (1, "姓名【{name}】与证件号【{id}】不匹配"),
        (1, "Name and ID number do not match"),
        (1, "Missing house number in shipping address"),
    ),
    "customer": (
        (8, "客户主动撤单"),
        (5, "客户要求取消"),
        (2, "客户要求撤单！！！"),
        (2, "客户说不要了"),
        (2, "客户已在别处办理"),
        (2, "客户担心合约期，不办了"),
        (1, "客户要换套餐"),
        (1, "非系统原因，客户主动取消"),
        (1, "客户投诉后撤单"),
        (1, "客户来电{phone}要求撤单"),
        (1, "客户cancel了"),
        (1, "客户觉得资费太贵，不要了"),
        (1, "Customer requested cancellation"),
    ),
    "customer_refused": (
        (5, "客户拒收"),
        (3, "客户拒签，快递已退回"),
        (3, "客户电话无人接听，快递退回"),
        (2, "客户本人不在收货地，无法当面激活"),
        (1, "客户拒收。。"),
        (1, "{express}反馈：收件人拒收，运单{waybill}"),
        (1, "Customer unreachable"),
        (1, "Customer no-show for courier activation"),
    ),
    "timeout_unpaid": (
        (6, "订单超时未支付已关闭"),
        (3, "超时未支付"),
        (2, "系统自动撤单：超时未支付"),
        (1, "支付超时，订单自动关闭"),
    ),
    "timeout_inactive": (
        (6, "系统自动撤单：超时未激活"),
        (3, "超时未激活"),
        (2, "{cs}卡：客户未按时激活，订单关闭"),
        (1, "发货后{n}天未激活，系统自动撤单"),
    ),
    "duplicate": (
        (6, "重复下单"),
        (3, "重复提交"),
        (2, "重复订单。。"),
        (3, "与订单{other_no}重复"),
        (2, "该用户已存在待审核订单"),
        (2, "同一身份证已有在途订单"),
        (1, "多次点击提交导致重复"),
        (1, "系统检测到重复下单，保留订单{other_no}"),
        (1, "网络波动导致重复提交，已撤销多余订单"),
        (1, "Duplicate order"),
        (1, "Duplicate of order #{other_no}"),
    ),
    "supply_stock": (
        (5, "号码资源不足"),
        (3, "所选号码已被占用"),
        (2, "选号失败，号码已售出"),
        (2, "上游缺货 换其他产品"),
        (2, "卡板库存不足"),
        (2, "今日发货额度已满"),
        (1, "E2001 库存不足"),
        (1, "【{cs}】{sys}返回：号码预占失败"),
        (1, "號碼資源不足"),
        (1, "无号"),
        (1, "套餐已停售"),
        (1, "Number pool exhausted"),
    ),
    "supply_logistics": (
        (3, "收货地址不在发货范围内"),
        (2, "该地区不支持配送"),
        (2, "快递无法派送(偏远地区)"),
        (2, "{express}快递暂停该区域揽派"),
        (1, "包裹退回：快递超区"),
        (1, "物流丢件，运单{waybill}"),
        (1, "天气原因快递停发"),
        (1, "Region not serviceable"),
    ),
    "system": (
        (3, "BSS接口超时"),
        (2, "{sys}返回：系统繁忙，请稍后再试"),
        (2, "上游系统异常，请重新提交"),
        (2, "网络异常"),
        (1, "cURL error 28: Operation timed out after {ms} milliseconds"),
        (1, "提单失败:Read timed out"),
        (1, "code=-1,msg=系统异常"),
        (1, '{{"code":500,"msg":"服务器内部错误","data":null}}'),
        (1, "校验【全网一证多号】出现异常，请联系系统管理员！"),
        (1, "国政通接口异常"),
        (1, "人脸识别服务超时"),
        (1, "实名认证服务不可用"),
        (1, "能力平台调用失败[ERR_TIMEOUT]"),
        (1, "订单数据解析失败"),
        (1, "Deadlock found when trying to get lock; try restarting transaction"),
        (1, "internal server error"),
        (1, "Carrier interface returned HTTP 503"),
        (1, "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway"
            "</h1></center><hr><center>nginx</center></body></html>"),
        (1, "java.net.SocketTimeoutException: Read timed out\n\tat java.net.SocketInputStream"
            ".socketRead0(Native Method)\n\tat com.hk.order.client.CarrierClient.submit"
            "(CarrierClient.java:{n})"),
        (1, "错误码：9999 未知错误"),
    ),
    "opaque": (
        (4, ""),
        (4, "\x00NULL"),
        (3, "见备注"),
        (2, "None"),
        (2, "撤单"),
        (1, "-"),
        (1, "/"),
        (1, "E1003"),
        (1, "其它原因"),
        (1, "运营商撤单"),
        (1, "？？？"),
        (1, "undefined"),
        (1, "无"),
        (1, "   "),
        (1, "已取消"),
        (1, "撤单原因："),
    ),
    "outage": (
        (5, "{sys}接口超时"),
        (3, "{cs}{sys}系统繁忙，请稍后再试"),
        (2, "调用{cs}{sys}开户接口异常：Connection refused"),
        (2, "{cs}能力平台调用失败[ERR_TIMEOUT]，traceId={trace}"),
        (2, "运营商系统繁忙导致审核超时，自动撤单"),
        (1, "调用省分接口异常"),
        (1, "{cs} BSS returned HTTP 503 Service Unavailable"),
        (1, '{{"respCode":"9999","respDesc":"{sys} system busy","traceId":"{trace}"}}'),
    ),
    "signature": (
        (6, "签名验证失败"),
        (2, "验签失败：sign error"),
        (2, '{{"code":401,"msg":"invalid signature","data":null}}'),
        (1, "证书过期导致请求失败"),
        (1, "Signature verification failed (appKey expired)"),
    ),
    "number_pool": (
        (5, "号码资源不足"),
        (3, "【{cs}】{sys}返回：号码预占失败，号池无可用号码"),
        (2, "{product}号码已售罄"),
        (2, "号池已空，暂停选号"),
        (1, "Number pool exhausted"),
    ),
    "region_pause": (
        (4, "{province}地区暂不受理"),
        (3, "根据反诈要求，{province}地区暂停办理"),
        (2, "收货地址属于高风险地区({province})，暂不发货"),
        (1, "断卡行动：{province}暂停开户"),
    ),
    "region_logistics": (
        (4, "{province}地区快递停发"),
        (3, "{express}快递暂停{province}揽派"),
        (2, "收货地址不在发货范围内({province})"),
    ),
    "takedown": (
        (6, "产品已下架"),
        (3, "{product}已下架，订单关闭"),
        (2, "套餐已停售"),
        (1, "上游通知：{product}停止受理"),
    ),
    "policy": (
        (4, "根据工信部最新要求，{cs}暂停受理异地开户"),
        (3, "新规：单证件{cs}限办2张"),
        (2, "{cs}风控新策略拦截：非常住地办理"),
        (1, "按{cs}集团通知，暂停线上号卡业务"),
    ),
    "abuse": (
        (4, "同一IP/设备高频下单"),
        (3, "客户不知情，疑似废单"),
        (2, "代理违规推广(地推)"),
        (2, "涉诈风险用户"),
        (1, "代理刷单，批量虚假订单"),
    ),
    "form_parser": (  # our form/parser drops a field: one wording for every distributor
        (1, "证件号码格式不正确(证件号码:undefined)"),
    ),
    "test": (
        (5, "推送测试"),
        (2, "测试单"),
        (1, "回调测试，请忽略"),
    ),
    "bulk": (
        (5, "批量撤单"),
        (2, "运营批量撤单"),
        (1, "批量撤单-活动结束"),
        (1, "后台批量处理：批量撤单"),
    ),
}

NULL_MARKER = "\x00NULL"
"""Template value that stands for SQL NULL."""

# Wrappers that upstreams and operators put around a reason; none changes its meaning.
PREFIXES: tuple[str, ...] = (
    "运营商返回：", "上游反馈：", "审核结果：", "撤单原因：", "备注:", "失败原因：", "【{cs}】",
)
SUFFIXES: tuple[str, ...] = ("！！", "。。", "~", "😂", "🙏", "...", "！！！", " ", "？？")

# Timeline entries for the ordinary lifecycle steps (JSON-timeline remarks).
STATUS_NOTES: dict[str, tuple[str, ...]] = {
    "已提交": ("订单已提交", "正在进单", "下单成功"),
    "待审核": ("预审通过，等待人工审核", "资料已提交审核", "待审核"),
    "已提运营商": ("审核通过，已提交运营商", "已提运营商开户", "提交{cs}成功"),
    "开卡中": ("运营商开卡中", "号码预占成功，开卡中", "{sys}处理中"),
    "已发货": ("已发货，{express}单号{waybill}", "{express}已揽收 {waybill}", "已发货"),
    "已激活": ("已激活", "客户已激活", "快递员上门激活成功"),
}
NOISE_NOTES: tuple[str, ...] = (
    "系统繁忙，重试中", "等待运营商回执", "上游处理中", "已催审", "客户来电咨询进度",
)

# Traditional forms of the characters that matter in reasons (a deliberate, small table).
TRADITIONAL: dict[str, str] = dict(
    zip(
        "审过号码资户单订证龄统网络实认库货发时异请务门达爱宽选预违规险诈额满类区这让关间无",
        "審過號碼資戶單訂證齡統網絡實認庫貨發時異請務門達愛寬選預違規險詐額滿類區這讓關間無",
        strict=True,
    )
)
