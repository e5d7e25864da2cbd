//! Built-in few-shot example banks for the sentiment label schemes people type, and the map from a
//! label word to what it means. `bullish,bearish,neutral`, `positive,neutral,negative` and
//! `利好,利空,中性` are one scheme (positive / negative / neutral) under different names, so they
//! share one bank and one set of label words in the prompt; only the reported names differ. That
//! also sidesteps label words a tokenizer splits alike (`利好` and `利空` start with the same token).

/// What a label word stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concept {
    Positive,
    Negative,
    Neutral,
}

impl Concept {
    /// The word the model is asked to continue with: plain English sentiment words, which small
    /// base models know best and whose first tokens differ.
    pub fn word(self) -> &'static str {
        match self {
            Concept::Positive => "positive",
            Concept::Negative => "negative",
            Concept::Neutral => "neutral",
        }
    }
}

/// The kind of text a bank's examples are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// Reviews and opinions.
    General,
    /// Financial news and market commentary.
    Market,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Zh,
}

/// Label words by meaning (compared lower-cased, trimmed). The flag marks market vocabulary,
/// which picks the market bank even for a two-label scheme.
const WORDS: &[(&str, Concept, bool)] = &[
    ("positive", Concept::Positive, false),
    ("pos", Concept::Positive, false),
    ("good", Concept::Positive, false),
    ("favorable", Concept::Positive, false),
    ("favourable", Concept::Positive, false),
    ("bullish", Concept::Positive, true),
    ("bull", Concept::Positive, true),
    ("up", Concept::Positive, true),
    ("正面", Concept::Positive, false),
    ("积极", Concept::Positive, false),
    ("好评", Concept::Positive, false),
    ("正向", Concept::Positive, false),
    ("利好", Concept::Positive, true),
    ("看涨", Concept::Positive, true),
    ("看多", Concept::Positive, true),
    ("上涨", Concept::Positive, true),
    ("negative", Concept::Negative, false),
    ("neg", Concept::Negative, false),
    ("bad", Concept::Negative, false),
    ("unfavorable", Concept::Negative, false),
    ("unfavourable", Concept::Negative, false),
    ("bearish", Concept::Negative, true),
    ("bear", Concept::Negative, true),
    ("down", Concept::Negative, true),
    ("负面", Concept::Negative, false),
    ("消极", Concept::Negative, false),
    ("差评", Concept::Negative, false),
    ("负向", Concept::Negative, false),
    ("利空", Concept::Negative, true),
    ("看跌", Concept::Negative, true),
    ("看空", Concept::Negative, true),
    ("下跌", Concept::Negative, true),
    ("neutral", Concept::Neutral, false),
    ("neu", Concept::Neutral, false),
    ("mixed", Concept::Neutral, false),
    ("none", Concept::Neutral, false),
    ("中性", Concept::Neutral, false),
    ("中立", Concept::Neutral, false),
    ("持平", Concept::Neutral, true),
];

/// One bank: examples in an order where any prefix is balanced across the concepts it holds.
#[derive(Debug)]
pub struct Bank {
    pub name: &'static str,
    pub domain: Domain,
    pub lang: Lang,
    /// The instruction line; `{labels}` is replaced by the concept words in the user's order.
    pub instruction: &'static str,
    pub examples: &'static [(Concept, &'static str)],
}

use Concept::{Negative as N, Neutral as O, Positive as P};

/// English reviews and opinions: the examples moat has always used for positive/negative.
const EN_GENERAL: Bank = Bank {
    name: "English reviews",
    domain: Domain::General,
    lang: Lang::En,
    instruction: "Classify the sentiment of each text as {labels}.",
    examples: &[
        (N, "The food was cold and the waiter ignored us for an hour."),
        (P, "An absolute delight from start to finish."),
        (N, "I would not recommend this phone to anyone; it broke in a week."),
        (P, "Great value, and it works perfectly."),
        (N, "A dull, lifeless film with nothing to say."),
        (P, "The staff were friendly and the room was spotless."),
        (N, "Worst purchase I have made this year."),
        (P, "A moving, beautifully acted story."),
        (O, "The package arrived on Tuesday."),
        (O, "The film runs for two hours and is in English."),
        (O, "The hotel is ten minutes from the station."),
    ],
};

/// English financial headlines, written for this bank (not drawn from any evaluation set).
const EN_MARKET: Bank = Bank {
    name: "English market news",
    domain: Domain::Market,
    lang: Lang::En,
    instruction: "Classify the sentiment of each financial news headline as {labels}.",
    examples: &[
        (P, "$ACME - Acme Corp beats on earnings, raises full-year guidance"),
        (N, "$INIT - Initech misses revenue estimates and cuts its outlook"),
        (O, "$SOYL - Soylent Corp declares $0.25 quarterly dividend"),
        (P, "Shares of Northwind jump 12% after record quarterly sales"),
        (N, "Umbrella shares slump 15% on weak guidance"),
        (O, "Federal Reserve to release minutes of its June meeting on Wednesday"),
        (P, "Analyst upgrades Contoso to Buy, lifts price target to $85"),
        (N, "Moody's downgrades Wayne Enterprises to junk"),
        (O, "Tyrell Corp to present at the Goldman Sachs technology conference"),
        (P, "Stocks rally to record highs as inflation cools"),
        (N, "Stocks tumble as recession fears grow"),
        (O, "What to watch in the markets this week"),
    ],
};

/// Chinese reviews (online shopping, hotels, books), written for this bank.
const ZH_GENERAL: Bank = Bank {
    name: "Chinese reviews",
    domain: Domain::General,
    lang: Lang::Zh,
    instruction: "Classify the sentiment of each text as {labels}.",
    examples: &[
        (N, "用了三天就坏了，客服也不理人。"),
        (P, "物流很快，质量也不错，会回购。"),
        (N, "书的印刷很差，有很多错别字。"),
        (P, "酒店位置方便，房间干净，服务热情。"),
        (N, "衣服有股怪味，洗了两次还有，很失望。"),
        (P, "屏幕清晰，电池耐用，性价比很高。"),
        (N, "房间隔音太差，一晚上没睡好。"),
        (P, "水果很新鲜，包装也很用心。"),
        (O, "快递今天送到，还没有开始用。"),
        (O, "这款手机有黑色和白色两种颜色。"),
        (O, "酒店离地铁站步行大约十分钟。"),
    ],
};

/// Chinese financial news, written for this bank.
const ZH_MARKET: Bank = Bank {
    name: "Chinese market news",
    domain: Domain::Market,
    lang: Lang::Zh,
    instruction: "Classify the sentiment of each financial news headline as {labels}.",
    examples: &[
        (P, "公司上半年净利润同比增长52%，超出市场预期"),
        (N, "公司因涉嫌信息披露违规被证监会立案调查"),
        (O, "公司将于下周召开2023年度股东大会"),
        (P, "央行宣布降准0.5个百分点，释放长期资金约1万亿元"),
        (N, "三季度营收同比下滑20%，净利润由盈转亏"),
        (O, "国家统计局将于周三公布5月CPI数据"),
        (P, "该股获多家机构上调评级至买入"),
        (N, "控股股东拟减持不超过3%的股份"),
        (O, "公司董事会审议通过换届选举议案"),
        (P, "A股三大指数集体高开，沪指涨超1%"),
        (N, "美股三大指数大幅收跌，纳指跌超3%"),
        (O, "该公司主营业务为电子元器件的研发与销售"),
    ],
};

/// Every built-in bank.
pub const BANKS: &[&Bank] = &[&EN_GENERAL, &EN_MARKET, &ZH_GENERAL, &ZH_MARKET];

/// A label set the banks know: each label's concept and the bank its examples come from.
#[derive(Debug, Clone, Copy)]
pub struct Scheme {
    pub bank: &'static Bank,
}

/// What `label` stands for, and whether it is market vocabulary; `None` when the map does not know it.
pub fn concept(label: &str) -> Option<(Concept, bool)> {
    let l = label.trim().to_lowercase();
    WORDS.iter().find(|(w, ..)| *w == l).map(|&(_, c, m)| (c, m))
}

/// The concepts of `labels`, one each, when every label is known, no two mean the same and both
/// polarities are there; else `None` (the labels are then used as they are, with no bank).
pub fn concepts(labels: &[String]) -> Option<Vec<Concept>> {
    let cs: Vec<Concept> = labels.iter().map(|l| concept(l).map(|c| c.0)).collect::<Option<_>>()?;
    let distinct = cs.iter().enumerate().all(|(i, c)| !cs[..i].contains(c));
    (distinct && cs.contains(&Concept::Positive) && cs.contains(&Concept::Negative)).then_some(cs)
}

/// The bank for `labels`: market news when a label is market vocabulary or the scheme has a
/// neutral class (positive/neutral/negative is the financial-news scheme), reviews otherwise;
/// Chinese when a label is written in Chinese. `None` when [`concepts`] is.
pub fn scheme(labels: &[String]) -> Option<Scheme> {
    let cs = concepts(labels)?;
    let market = labels.iter().any(|l| concept(l).is_some_and(|c| c.1)) || cs.contains(&Concept::Neutral);
    let zh = labels.iter().any(|l| l.chars().any(is_cjk));
    let domain = if market { Domain::Market } else { Domain::General };
    let lang = if zh { Lang::Zh } else { Lang::En };
    let bank = BANKS.iter().copied().find(|b| b.domain == domain && b.lang == lang)?;
    Some(Scheme { bank })
}

fn is_cjk(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}' | '\u{F900}'..='\u{FAFF}')
}

impl Scheme {
    /// The bank's examples for `concepts` (others skipped), in the bank's balanced order.
    pub fn examples(&self, concepts: &[Concept]) -> Vec<(Concept, &'static str)> {
        self.bank.examples.iter().copied().filter(|(c, _)| concepts.contains(c)).collect()
    }

    /// Examples shown when the user names no count: three per label (eight for two labels,
    /// which is what the reviews bank has always shown).
    pub fn default_shots(n_labels: usize) -> usize {
        if n_labels == 2 {
            8
        } else {
            3 * n_labels
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(x: &[&str]) -> Vec<String> {
        x.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn label_words_map_by_meaning() {
        assert_eq!(concept("Bullish"), Some((Concept::Positive, true)));
        assert_eq!(concept(" 利空 "), Some((Concept::Negative, true)));
        assert_eq!(concept("中性"), Some((Concept::Neutral, false)));
        assert_eq!(concept("sports"), None);
        use Concept::*;
        assert_eq!(concepts(&v(&["bullish", "bearish", "neutral"])), Some(vec![Positive, Negative, Neutral]));
        assert_eq!(concepts(&v(&["利好", "利空", "中性"])), Some(vec![Positive, Negative, Neutral]));
        // Unknown labels, two words for one meaning, or no polarity pair: the old behaviour.
        assert!(concepts(&v(&["sports", "politics"])).is_none());
        assert!(concepts(&v(&["positive", "bullish", "negative"])).is_none());
        assert!(concepts(&v(&["positive", "neutral"])).is_none());
        assert!(scheme(&v(&["positive", "negative", "sports"])).is_none());
    }

    #[test]
    fn bank_per_scheme() {
        let name = |x: &[&str]| scheme(&v(x)).map(|s| s.bank.name);
        assert_eq!(name(&["positive", "negative"]), Some("English reviews"));
        assert_eq!(name(&["negative", "positive"]), Some("English reviews"));
        assert_eq!(name(&["positive", "neutral", "negative"]), Some("English market news"));
        assert_eq!(name(&["bullish", "bearish", "neutral"]), Some("English market news"));
        assert_eq!(name(&["bullish", "bearish"]), Some("English market news"));
        assert_eq!(name(&["利好", "利空", "中性"]), Some("Chinese market news"));
        assert_eq!(name(&["正面", "负面"]), Some("Chinese reviews"));
        assert_eq!(name(&["正面", "负面", "中性"]), Some("Chinese market news"));
        let s = scheme(&v(&["bullish", "bearish"])).unwrap();
        assert!(s.examples(&[Concept::Positive, Concept::Negative]).iter().all(|e| e.0 != Concept::Neutral));
    }

    #[test]
    fn every_bank_is_labelled_balanced_and_both_languages_exist() {
        for lang in [Lang::En, Lang::Zh] {
            for domain in [Domain::General, Domain::Market] {
                assert!(BANKS.iter().any(|b| b.lang == lang && b.domain == domain), "{lang:?} {domain:?}");
            }
        }
        for b in BANKS {
            assert!(b.instruction.contains("{labels}"), "{}", b.name);
            for (c, text) in b.examples {
                // Every example is labelled with a concept the word map can name.
                assert!(WORDS.iter().any(|(w, k, _)| k == c && *w == c.word()), "{}: {text}", b.name);
                assert!(!text.trim().is_empty() && !text.contains(['\n', '\t']), "{}: {text:?}", b.name);
                assert_eq!(b.lang == Lang::Zh, text.chars().any(is_cjk), "{}: {text}", b.name);
            }
            // The default shot count draws a balanced prefix for every scheme the bank serves.
            for set in [&[P, N][..], &[P, N, O][..]] {
                let ex: Vec<Concept> = b.examples.iter().map(|e| e.0).filter(|c| set.contains(c)).collect();
                let k = Scheme::default_shots(set.len());
                if b.domain == Domain::General && set.len() == 3 {
                    continue; // three-label schemes use the market banks
                }
                assert!(ex.len() >= k, "{} has {} examples for {set:?}", b.name, ex.len());
                for c in set {
                    let n = ex[..k].iter().filter(|x| *x == c).count();
                    assert!(n >= k / set.len(), "{}: {n} of {c:?} in the first {k}", b.name);
                }
            }
        }
    }
}
