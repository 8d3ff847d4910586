//! Deterministic Chinese text for the data generator: names, addresses, valid
//! 身份证号 (GB 11643 check digit), phones, visit notes and demand texts.

use chrono::{Datelike, NaiveDate};
use rand::Rng;
use rand::seq::IndexedRandom;

/// Common surnames, most frequent first (weights follow the order loosely).
const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "高", "林", "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾",
    "肖", "田", "董", "袁", "潘", "于", "蒋", "蔡", "余", "杜", "叶", "程", "苏", "魏", "吕", "丁",
    "任", "沈", "姚", "卢", "姜", "崔", "钟", "谭", "陆", "汪", "范", "金", "石", "廖", "贾", "夏",
];

const GIVEN_MALE: &[&str] = &[
    "伟", "强", "军", "勇", "杰", "涛", "明", "超", "刚", "平", "辉", "鹏", "华", "飞", "斌", "波",
    "建", "国", "文", "德", "福", "贵", "林", "海", "志", "东", "宏", "春", "永", "庆", "兴", "新",
    "成", "荣", "生", "宝", "祥", "俊", "浩", "宇", "轩", "博", "晨", "磊", "峰", "亮", "旭", "毅",
];

const GIVEN_FEMALE: &[&str] = &[
    "芳", "娜", "敏", "静", "丽", "艳", "娟", "霞", "秀", "英", "玲", "桂", "兰", "凤", "珍", "红",
    "梅", "琴", "云", "莲", "燕", "萍", "洁", "婷", "雪", "慧", "颖", "佳", "欣", "怡", "雨", "琳",
];

const TOWNSHIPS: &[&str] = &[
    "城关镇",
    "青山镇",
    "白沙乡",
    "石桥镇",
    "龙泉乡",
    "河口镇",
    "东岭乡",
    "西坝镇",
    "南塘镇",
    "北山乡",
    "清溪镇",
    "桃源乡",
];

const VILLAGE_FIRST: &[&str] = &[
    "小河", "大坪", "石门", "柳树", "枣园", "新庄", "杨家", "李家", "上湾", "下湾", "双桥", "三岔",
    "马鞍", "青松", "红旗", "黄土", "白杨", "梨花", "竹林", "团结", "和平", "前进", "金鸡", "凤凰",
];

const VILLAGE_KIND: &[&str] = &["村", "村", "村", "村", "社区"];

/// Phrases cadres write in visit notes (民情日记); a note strings several together.
const NOTE_PHRASES: &[&str] = &[
    "入户了解家庭生产生活情况",
    "老人身体状况良好，按时服药",
    "家中主要劳动力在外务工，收入较稳定",
    "反映村道路灯损坏，晚上出行不便",
    "询问医保缴费和报销流程，已当面讲解",
    "孩子在镇中心小学读书，学习成绩中等",
    "今年种植水稻五亩，长势良好",
    "家里房屋有漏雨情况，需要维修",
    "宣传了防诈骗知识和防汛安全常识",
    "对村里的环境整治工作表示满意",
    "希望能帮忙联系技能培训，想学电工",
    "低保材料已帮助整理，下周送到镇民政办",
    "老人独自在家，嘱咐邻居多照看",
    "了解到户主腿脚不便，需要代购药品",
    "养殖生猪十二头，销路暂时没有问题",
    "反映自来水水压偏低，高峰时段停水",
    "残疾人补贴已按月发放到位",
    "退役军人优待证已办理，本人表示感谢",
    "留守儿童由爷爷奶奶照看，心理状态良好",
    "提出希望村里增设健身器材",
    "对上次反映的问题处理结果比较满意",
    "家中有慢性病人，已签约家庭医生",
    "讲解了农村养老保险的缴费档次",
    "门前排水沟堵塞，已联系网格员清理",
    "春耕需要化肥种子，已登记需求",
    "近期家中无重大变化，生活平稳",
    "子女每月寄钱回家，基本生活有保障",
    "询问危房改造政策，已记录并上报",
    "邻里之间因宅基地边界有小矛盾，已初步调解",
    "电动车充电不便，希望集中设置充电桩",
];

/// Demand categories (诉求类别) with rough weights.
pub const CATEGORIES: &[(&str, u32)] = &[
    ("医疗", 18),
    ("养老", 14),
    ("道路", 12),
    ("住房", 10),
    ("就业", 10),
    ("低保", 9),
    ("饮水", 8),
    ("教育", 7),
    ("环境", 7),
    ("邻里纠纷", 5),
];

const DEMAND_TEXTS: &[&str] = &[
    "希望村口路灯尽快修好，晚上出行不安全",
    "申请危房改造补助，房屋墙体开裂",
    "家中老人行动不便，希望安排上门体检",
    "孩子上学路远，希望协调校车接送",
    "自来水经常停水，请求排查管网",
    "想参加技能培训，希望推荐就业岗位",
    "低保年审材料不清楚如何准备",
    "门前道路坑洼积水，请求硬化",
    "垃圾清运不及时，夏天气味很大",
    "与邻居因排水问题发生纠纷，请求调解",
    "医保报销比例有疑问，请求解释",
    "希望增设老年活动室",
];

/// Picks from weighted `(item, weight)` pairs.
pub fn weighted<'a, T>(rng: &mut impl Rng, items: &'a [(T, u32)]) -> &'a T {
    let total: u32 = items.iter().map(|(_, w)| *w).sum();
    let mut x = rng.random_range(0..total.max(1));
    for (item, w) in items {
        if x < *w {
            return item;
        }
        x -= w;
    }
    // Weights sum to `total`, so the loop returns unless `items` is empty,
    // which the constant tables never are.
    &items[items.len() - 1].0
}

fn pick<'a>(rng: &mut impl Rng, items: &'a [&'a str]) -> &'a str {
    // Every table passed here is a non-empty constant.
    items.choose(rng).copied().unwrap_or("")
}

/// A surname.
pub fn surname(rng: &mut impl Rng) -> &'static str {
    // Earlier surnames are more common: take the smaller of two draws.
    let a = rng.random_range(0..SURNAMES.len());
    let b = rng.random_range(0..SURNAMES.len());
    SURNAMES[a.min(b)]
}

/// A given name of one or two characters.
pub fn given_name(rng: &mut impl Rng, male: bool) -> String {
    let table = if male { GIVEN_MALE } else { GIVEN_FEMALE };
    let n = if rng.random_bool(0.7) { 2 } else { 1 };
    (0..n).map(|_| pick(rng, table)).collect()
}

/// A township name.
pub fn township(rng: &mut impl Rng) -> &'static str {
    pick(rng, TOWNSHIPS)
}

/// A village name, made distinct by its index.
pub fn village_name(rng: &mut impl Rng, index: usize) -> String {
    let first = pick(rng, VILLAGE_FIRST);
    let kind = pick(rng, VILLAGE_KIND);
    if index < VILLAGE_FIRST.len() {
        format!("{first}{kind}")
    } else {
        format!("{first}{}{kind}", index / VILLAGE_FIRST.len())
    }
}

/// The GB 11643 check character of the first 17 digits.
pub fn id_card_check(body17: &str) -> char {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];
    let sum: u32 = body17
        .bytes()
        .zip(WEIGHTS)
        .map(|(b, w)| u32::from(b.saturating_sub(b'0')) * w)
        .sum();
    CHECK[(sum % 11) as usize]
}

/// A valid 18-character 身份证号 for someone born on `birth` in `region`
/// (six digits), male or female (the 17th digit is odd for men).
pub fn id_card(rng: &mut impl Rng, region: &str, birth: NaiveDate, male: bool) -> String {
    let seq = rng.random_range(0..50u32) * 2 + u32::from(male);
    let seq = format!("{:02}{}", rng.random_range(0..100u32), seq % 10);
    let body = format!(
        "{region}{:04}{:02}{:02}{seq}",
        birth.year(),
        birth.month(),
        birth.day()
    );
    let check = id_card_check(&body);
    format!("{body}{check}")
}

/// A mobile number.
pub fn phone(rng: &mut impl Rng) -> String {
    const PREFIX: &[&str] = &[
        "138", "139", "137", "135", "150", "151", "158", "186", "187", "177", "199",
    ];
    format!(
        "{}{:08}",
        pick(rng, PREFIX),
        rng.random_range(0..100_000_000u32)
    )
}

/// Every distinct character of the phrase, name and place tables: the
/// vocabulary the free part of a note is drawn from.
fn char_pool() -> &'static [char] {
    static POOL: std::sync::OnceLock<Vec<char>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let mut set = std::collections::BTreeSet::new();
        for table in [
            NOTE_PHRASES,
            DEMAND_TEXTS,
            GIVEN_MALE,
            GIVEN_FEMALE,
            SURNAMES,
            VILLAGE_FIRST,
            TOWNSHIPS,
        ] {
            for s in table {
                set.extend(s.chars().filter(|c| !matches!(c, '，' | '。')));
            }
        }
        set.into_iter().collect()
    })
}

/// A visit note of 100 to 300 characters: cadres' phrases, each possibly
/// followed by a free clause of characters drawn from the tables' vocabulary
/// (so that notes compress about like real text rather than like a phrase book).
pub fn note(rng: &mut impl Rng) -> String {
    let target = rng.random_range(100..=300usize);
    let pool = char_pool();
    let mut out = String::new();
    let mut chars = 0;
    loop {
        let p = pick(rng, NOTE_PHRASES);
        let n = p.chars().count() + 1;
        if chars + n > 300 {
            break;
        }
        out.push_str(p);
        out.push(if rng.random_bool(0.7) { '，' } else { '。' });
        chars += n;
        if chars >= target {
            break;
        }
        let free = rng.random_range(6..=16usize);
        if rng.random_bool(0.6) && chars + free < 300 {
            for _ in 0..free {
                out.push(pool[rng.random_range(0..pool.len())]);
            }
            out.push('，');
            chars += free + 1;
        }
    }
    // Pad with a closing phrase if a long phrase stopped us below 100.
    while chars < 100 {
        out.push_str("后续继续跟进。");
        chars += 7;
    }
    out
}

/// A demand text.
pub fn demand_text(rng: &mut impl Rng) -> &'static str {
    pick(rng, DEMAND_TEXTS)
}

/// A uniformly drawn date between `from` and `to` inclusive.
pub fn date_between(rng: &mut impl Rng, from: NaiveDate, to: NaiveDate) -> NaiveDate {
    let days = (to - from).num_days().max(0);
    from + chrono::Duration::days(rng.random_range(0..=days))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn generated_id_cards_pass_the_model_check() {
        let mut rng = StdRng::seed_from_u64(7);
        let today = NaiveDate::from_ymd_opt(2025, 1, 1).expect("valid date");
        for i in 0..500 {
            let birth = date_between(
                &mut rng,
                NaiveDate::from_ymd_opt(1930, 1, 1).expect("valid date"),
                NaiveDate::from_ymd_opt(2020, 12, 31).expect("valid date"),
            );
            let male = i % 2 == 0;
            let card = id_card(&mut rng, "330782", birth, male);
            let parsed = minqing_model::IdCardNumber::parse(&card, today)
                .unwrap_or_else(|e| panic!("{card}: {e}"));
            parsed
                .check_consistent(Some(birth), None)
                .unwrap_or_else(|e| panic!("{card}: {e}"));
        }
    }

    #[test]
    fn notes_are_between_100_and_300_characters() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..1000 {
            let n = note(&mut rng).chars().count();
            assert!((100..=300).contains(&n), "{n}");
        }
    }

    #[test]
    fn check_digit_matches_a_known_number() {
        // The GB 11643 standard's worked example.
        assert_eq!(id_card_check("11010519491231002"), 'X');
    }
}
