<?xml version="1.0" encoding="UTF-8"?>
<lexicon version="1.0" xmlns="http://www.w3.org/2005/01/pronunciation-lexicon" alphabet="ipa" xml:lang="zh-CN">
  <!-- Names the front ends read wrong: 单 is shàn as a surname (pypinyin says dān), Siobhan is "shi-VAWN". -->
  <lexeme><grapheme>单田芳</grapheme><phoneme alphabet="x-pinyin">shan4 tian2 fang1</phoneme></lexeme>
  <lexeme><grapheme>Siobhan</grapheme><phoneme>ʃɪˈvɔn</phoneme></lexeme>
  <lexeme><grapheme>W3C</grapheme><alias>World Wide Web Consortium</alias></lexeme>
</lexicon>
