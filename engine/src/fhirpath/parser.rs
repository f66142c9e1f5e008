//! FHIRPath parser: tokens to an AST, by precedence climbing over the grammar of FHIRPath
//! N1 (2.0.0), with the character offset of every node.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use core::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

use super::lexer::{tokenize, Spanned, Token};
use super::ParseError;
use crate::model::{self, TypeId};

/// Deepest nesting of sub-expressions accepted.
pub(crate) const MAX_DEPTH: usize = 200;
/// Longest run of operators or member steps in a row (`a | b | c ...`, `a.b.c...`): each adds
/// a level to the tree, which compiling and evaluating walk.
pub(crate) const MAX_CHAIN: usize = 1000;

/// A literal value of the language.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Empty,
    Bool(bool),
    Str(String),
    /// An integer or decimal, as written.
    Number(String),
    /// `@2014-01-25T14:30:00Z`, `@2014`, `@T14:30`: the text after `@`.
    DateTime(String),
    /// A number and a unit: a UCUM code (`'mg'`) or a calendar keyword (`days`).
    Quantity(String, String),
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinaryOp {
    Mul,
    Div,
    IntDiv,
    Mod,
    Add,
    Sub,
    Concat,
    Union,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Equiv,
    Ne,
    NotEquiv,
    In,
    Contains,
    And,
    Or,
    Xor,
    Implies,
}

/// An expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Literal(Literal, usize),
    /// A name on its own: a member of `$this`, or a type name at the start of a path.
    Ident(Name, usize),
    /// `target.name`.
    Member(Box<Expr>, Name, usize),
    /// `target.name(args)`, or `name(args)` on `$this` when `target` is `None`.
    Call(Option<Box<Expr>>, String, Vec<Expr>, usize),
    /// `target[index]`.
    Index(Box<Expr>, Box<Expr>, usize),
    /// Unary `-` (`true`) or `+` (`false`).
    Negate(Box<Expr>, bool, usize),
    Binary(BinaryOp, Box<Expr>, Box<Expr>, usize),
    /// `is` (`true`) or `as` (`false`) with a type specifier.
    TypeTest(Box<Expr>, bool, TypeName, usize),
    /// `%name`.
    External(String, usize),
    This(usize),
    IndexVar(usize),
    Total(usize),
}

/// A name in a path, with what evaluation needs to find it fast: the FHIR type it names (for
/// `Patient.name` and `ofType(Quantity)`), and where it was last found.
pub(crate) struct Name {
    text: String,
    /// The model type called `text`, if any.
    pub type_id: Option<TypeId>,
    /// Recent lookups of the name as an element, each a [`MemberSlot`] packed in 64 bits, in
    /// the slot its type's id picks (paths over a Bundle's entries meet several types in
    /// turn). Lookups depend only on the object's type and the name, so any thread may fill
    /// them in.
    /// (Boxed: names are in every path node, and deep expressions recurse through them.)
    slots: Box<[AtomicU64; NAME_SLOTS]>,
}

/// How many lookups a [`Name`] remembers.
const NAME_SLOTS: usize = 8;

/// Where a name was found in one type: its element and, for a choice element named by its
/// typed JSON name (`valueQuantity`), the choice; `None` when the type has no such element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MemberSlot {
    pub type_id: TypeId,
    pub found: Option<(u16, Option<u16>)>,
}

const SLOT_FILLED: u64 = 1 << 63;
const SLOT_FOUND: u64 = 1 << 62;
const SLOT_CHOICE: u64 = 1 << 61;

impl Name {
    pub(crate) fn new(text: String) -> Name {
        let type_id = model::type_by_name(&text);
        Name {
            text,
            type_id,
            slots: Box::default(),
        }
    }

    /// The last lookup, if it was for `type_id`.
    pub(crate) fn cached(&self, type_id: TypeId) -> Option<MemberSlot> {
        let bits = self.slot(type_id).load(AtomicOrdering::Relaxed);
        if bits & SLOT_FILLED == 0 || (bits & 0xFFFF) as u16 != type_id.0 {
            return None;
        }
        let found = (bits & SLOT_FOUND != 0).then(|| {
            let element = ((bits >> 16) & 0xFFFF) as u16;
            let choice = (bits & SLOT_CHOICE != 0).then_some(((bits >> 32) & 0xFFFF) as u16);
            (element, choice)
        });
        Some(MemberSlot { type_id, found })
    }

    /// Remembers a lookup.
    pub(crate) fn remember(&self, slot: MemberSlot) {
        let mut bits = SLOT_FILLED | u64::from(slot.type_id.0);
        if let Some((element, choice)) = slot.found {
            bits |= SLOT_FOUND | (u64::from(element) << 16);
            if let Some(choice) = choice {
                bits |= SLOT_CHOICE | (u64::from(choice) << 32);
            }
        }
        self.slot(slot.type_id).store(bits, AtomicOrdering::Relaxed);
    }

    fn slot(&self, type_id: TypeId) -> &AtomicU64 {
        &self.slots[usize::from(type_id.0) % NAME_SLOTS]
    }
}

impl core::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

impl Clone for Name {
    fn clone(&self) -> Name {
        Name {
            text: self.text.clone(),
            type_id: self.type_id,
            slots: Box::new(core::array::from_fn(|at| {
                AtomicU64::new(self.slots[at].load(AtomicOrdering::Relaxed))
            })),
        }
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        self.text == other.text
    }
}

impl core::fmt::Debug for Name {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(&self.text, f)
    }
}

impl core::fmt::Display for Name {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.text)
    }
}

/// A type specifier: `Patient`, `FHIR.Patient`, `System.String`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TypeName {
    pub namespace: Option<String>,
    pub name: String,
    /// The model type called `name`, if any.
    pub type_id: Option<TypeId>,
}

impl TypeName {
    pub(crate) fn new(namespace: Option<String>, name: String) -> TypeName {
        let type_id = model::type_by_name(&name);
        TypeName {
            namespace,
            name,
            type_id,
        }
    }

    pub(crate) fn as_ref(&self) -> TypeRef<'_> {
        TypeRef {
            namespace: self.namespace.as_deref(),
            name: &self.name,
            type_id: self.type_id,
        }
    }
}

/// A type specifier borrowed from the tree: [`TypeName`], or a type given as a function's
/// argument (`ofType(Quantity)`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TypeRef<'n> {
    pub namespace: Option<&'n str>,
    pub name: &'n str,
    pub type_id: Option<TypeId>,
}

impl Expr {
    pub(crate) fn offset(&self) -> usize {
        match self {
            Expr::Literal(_, offset)
            | Expr::Ident(_, offset)
            | Expr::Member(_, _, offset)
            | Expr::Call(_, _, _, offset)
            | Expr::Index(_, _, offset)
            | Expr::Negate(_, _, offset)
            | Expr::Binary(_, _, _, offset)
            | Expr::TypeTest(_, _, _, offset)
            | Expr::External(_, offset)
            | Expr::This(offset)
            | Expr::IndexVar(offset)
            | Expr::Total(offset) => *offset,
        }
    }
}

/// Parses a whole expression.
pub(crate) fn parse(text: &str) -> Result<Expr, ParseError> {
    let tokens = tokenize(text)?;
    let mut parser = Parser {
        tokens,
        pos: 0,
        depth: 0,
    };
    let expr = parser.expression(0)?;
    match parser.peek() {
        Token::End => Ok(expr),
        other => Err(ParseError::new(
            format!(
                "expected the end of the expression, found {}",
                describe(other)
            ),
            parser.offset(),
        )),
    }
}

struct Parser {
    tokens: Vec<Spanned>,
    pos: usize,
    depth: usize,
}

fn describe(token: &Token) -> String {
    match token {
        Token::Ident(name, _) => format!("'{name}'"),
        Token::Str(text) => format!("the string '{text}'"),
        Token::Number(text) => format!("the number {text}"),
        Token::DateTime(text) => format!("@{text}"),
        Token::External(name) => format!("%{name}"),
        Token::Special(name) => name.clone(),
        Token::Symbol(symbol) => format!("'{symbol}'"),
        Token::End => String::from("the end of the expression"),
    }
}

/// Binding power of an infix operator token; `None` when the token is not one.
fn infix(token: &Token) -> Option<(u8, Option<BinaryOp>)> {
    let op = match token {
        Token::Symbol(symbol) => match *symbol {
            "*" => (10, BinaryOp::Mul),
            "/" => (10, BinaryOp::Div),
            "+" => (9, BinaryOp::Add),
            "-" => (9, BinaryOp::Sub),
            "&" => (9, BinaryOp::Concat),
            "|" => (7, BinaryOp::Union),
            "<" => (6, BinaryOp::Lt),
            "<=" => (6, BinaryOp::Le),
            ">" => (6, BinaryOp::Gt),
            ">=" => (6, BinaryOp::Ge),
            "=" => (5, BinaryOp::Eq),
            "~" => (5, BinaryOp::Equiv),
            "!=" => (5, BinaryOp::Ne),
            "!~" => (5, BinaryOp::NotEquiv),
            _ => return None,
        },
        Token::Ident(name, false) => match name.as_str() {
            "div" => (10, BinaryOp::IntDiv),
            "mod" => (10, BinaryOp::Mod),
            "is" | "as" => return Some((8, None)),
            "in" => (4, BinaryOp::In),
            "contains" => (4, BinaryOp::Contains),
            "and" => (3, BinaryOp::And),
            "or" => (2, BinaryOp::Or),
            "xor" => (2, BinaryOp::Xor),
            "implies" => (1, BinaryOp::Implies),
            _ => return None,
        },
        _ => return None,
    };
    Some((op.0, Some(op.1)))
}

/// Every function the evaluator knows; a call to any other name is a compile-time error.
const FUNCTIONS: &[&str] = &[
    "abs",
    "aggregate",
    "all",
    "allFalse",
    "allTrue",
    "anyFalse",
    "anyTrue",
    "as",
    "avg",
    "ceiling",
    "children",
    "combine",
    "comparable",
    "conformsTo",
    "contains",
    "convertsToBoolean",
    "convertsToDate",
    "convertsToDateTime",
    "convertsToDecimal",
    "convertsToInteger",
    "convertsToLong",
    "convertsToQuantity",
    "convertsToString",
    "convertsToTime",
    "count",
    "decode",
    "defineVariable",
    "descendants",
    "distinct",
    "empty",
    "encode",
    "endsWith",
    "escape",
    "exclude",
    "exists",
    "exp",
    "extension",
    "first",
    "floor",
    "getValue",
    "hasValue",
    "highBoundary",
    "htmlChecks",
    "iif",
    "indexOf",
    "intersect",
    "is",
    "isDistinct",
    "join",
    "last",
    "length",
    "ln",
    "log",
    "lowBoundary",
    "lower",
    "matches",
    "matchesFull",
    "max",
    "memberOf",
    "min",
    "not",
    "now",
    "ofType",
    "power",
    "precision",
    "repeat",
    "replace",
    "replaceMatches",
    "resolve",
    "round",
    "select",
    "single",
    "skip",
    "sort",
    "split",
    "sqrt",
    "startsWith",
    "subsetOf",
    "substring",
    "sum",
    "supersetOf",
    "tail",
    "take",
    "timeOfDay",
    "toBoolean",
    "toChars",
    "toDate",
    "toDateTime",
    "toDecimal",
    "toInteger",
    "toLong",
    "toQuantity",
    "toString",
    "toTime",
    "today",
    "trace",
    "trim",
    "truncate",
    "type",
    "unescape",
    "union",
    "upper",
    "where",
];

/// FHIR functions of R4 §2.3 that need what the engine does not have yet.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("subsumes", "a terminology server"),
    ("subsumedBy", "a terminology server"),
    ("slice", "profiles"),
    ("checkModifiers", "profiles"),
    ("elementDefinition", "profiles"),
];

fn check_function(name: &str, offset: usize) -> Result<(), ParseError> {
    if FUNCTIONS.contains(&name) {
        return Ok(());
    }
    match UNSUPPORTED
        .iter()
        .find(|(unsupported, _)| *unsupported == name)
    {
        Some((_, needs)) => Err(ParseError::new(
            format!("{name}() is not supported: it needs {needs}"),
            offset,
        )),
        None => Err(ParseError::new(
            format!("unknown function {name}()"),
            offset,
        )),
    }
}

/// Keywords that cannot be names without backticks (FHIRPath N1 grammar, `identifier`).
const RESERVED: &[&str] = &["div", "mod", "and", "or", "xor", "implies", "true", "false"];

const CALENDAR_UNITS: &[&str] = &[
    "year",
    "years",
    "month",
    "months",
    "week",
    "weeks",
    "day",
    "days",
    "hour",
    "hours",
    "minute",
    "minutes",
    "second",
    "seconds",
    "millisecond",
    "milliseconds",
];

impl Parser {
    fn peek(&self) -> &Token {
        self.tokens
            .get(self.pos)
            .map_or(&Token::End, |spanned| &spanned.token)
    }

    fn offset(&self) -> usize {
        self.tokens
            .get(self.pos)
            .map_or(0, |spanned| spanned.offset)
    }

    fn next(&mut self) -> Token {
        let token = self.peek().clone();
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        token
    }

    fn expect(&mut self, symbol: &str) -> Result<(), ParseError> {
        match self.peek() {
            Token::Symbol(found) if *found == symbol => {
                self.pos += 1;
                Ok(())
            }
            other => Err(ParseError::new(
                format!("expected '{symbol}', found {}", describe(other)),
                self.offset(),
            )),
        }
    }

    fn expression(&mut self, min_power: u8) -> Result<Expr, ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError::new(
                format!("expected at most {MAX_DEPTH} levels of nesting, found more"),
                self.offset(),
            ));
        }
        let mut left = self.unary()?;
        let mut chain = 0;
        while let Some((power, op)) = infix(self.peek()) {
            if power <= min_power {
                break;
            }
            chain += 1;
            if chain > MAX_CHAIN {
                return Err(ParseError::new(
                    format!("expected at most {MAX_CHAIN} operators in a row, found more"),
                    self.offset(),
                ));
            }
            let offset = self.offset();
            let token = self.next();
            left = match op {
                Some(op) => {
                    let right = self.expression(power)?;
                    Expr::Binary(op, Box::new(left), Box::new(right), offset)
                }
                None => {
                    let is = matches!(&token, Token::Ident(name, _) if name == "is");
                    let type_name = self.type_specifier()?;
                    Expr::TypeTest(Box::new(left), is, type_name, offset)
                }
            };
        }
        self.depth -= 1;
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        let offset = self.offset();
        match self.peek() {
            Token::Symbol("-")
                if matches!(
                    self.tokens.get(self.pos + 1).map(|t| &t.token),
                    Some(Token::Number(_))
                ) =>
            {
                // `-2147483648` is the least Integer: the sign belongs to the literal.
                self.pos += 1;
                let operand = self.postfix_from_negative_number(offset)?;
                Ok(operand)
            }
            Token::Symbol("-") | Token::Symbol("+") => {
                let negate = matches!(self.next(), Token::Symbol("-"));
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(ParseError::new(
                        format!("expected at most {MAX_DEPTH} levels of nesting, found more"),
                        offset,
                    ));
                }
                let operand = self.unary()?;
                self.depth -= 1;
                Ok(Expr::Negate(Box::new(operand), negate, offset))
            }
            _ => self.postfix(),
        }
    }

    /// After a `-` directly before a number: the negative literal, then any postfix steps
    /// (`-1.abs()` is `-(1.abs())` by the grammar, so a step keeps the negation outside).
    fn postfix_from_negative_number(&mut self, offset: usize) -> Result<Expr, ParseError> {
        if matches!(
            self.tokens.get(self.pos + 1).map(|t| &t.token),
            Some(Token::Symbol(".") | Token::Symbol("["))
        ) || matches!(
            self.tokens.get(self.pos + 1).map(|t| &t.token),
            Some(Token::Str(_))
        ) {
            let operand = self.postfix()?;
            return Ok(Expr::Negate(Box::new(operand), true, offset));
        }
        match self.next() {
            Token::Number(text) => match self.peek().clone() {
                Token::Ident(unit, false) if CALENDAR_UNITS.contains(&unit.as_str()) => {
                    self.pos += 1;
                    Ok(Expr::Literal(
                        Literal::Quantity(format!("-{text}"), unit),
                        offset,
                    ))
                }
                _ => Ok(Expr::Literal(Literal::Number(format!("-{text}")), offset)),
            },
            other => Err(ParseError::new(
                format!("expected a number, found {}", describe(&other)),
                offset,
            )),
        }
    }

    fn postfix(&mut self) -> Result<Expr, ParseError> {
        let mut expr = self.term()?;
        let mut chain = 0;
        loop {
            chain += 1;
            if chain > MAX_CHAIN {
                return Err(ParseError::new(
                    format!("expected at most {MAX_CHAIN} steps in a path, found more"),
                    self.offset(),
                ));
            }
            match self.peek() {
                Token::Symbol(".") => {
                    self.pos += 1;
                    let offset = self.offset();
                    let name = match self.next() {
                        // Keywords other than as/contains/in/is are names only in backticks.
                        Token::Ident(name, false) if RESERVED.contains(&name.as_str()) => {
                            return Err(ParseError::new(
                                format!("expected a name after '.', found the keyword '{name}' (write `{name}` to use it as a name)"),
                                offset,
                            ))
                        }
                        Token::Ident(name, _) => name,
                        other => {
                            return Err(ParseError::new(
                                format!("expected a name after '.', found {}", describe(&other)),
                                offset,
                            ))
                        }
                    };
                    if self.peek() == &Token::Symbol("(") {
                        check_function(&name, offset)?;
                        let args = self.arguments()?;
                        expr = Expr::Call(Some(Box::new(expr)), name, args, offset);
                    } else {
                        expr = Expr::Member(Box::new(expr), Name::new(name), offset);
                    }
                }
                Token::Symbol("[") => {
                    let offset = self.offset();
                    self.pos += 1;
                    let index = self.expression(0)?;
                    self.expect("]")?;
                    expr = Expr::Index(Box::new(expr), Box::new(index), offset);
                }
                _ => return Ok(expr),
            }
        }
    }

    fn arguments(&mut self) -> Result<Vec<Expr>, ParseError> {
        self.expect("(")?;
        let mut args = Vec::new();
        if self.peek() == &Token::Symbol(")") {
            self.pos += 1;
            return Ok(args);
        }
        loop {
            args.push(self.expression(0)?);
            match self.next() {
                Token::Symbol(",") => continue,
                Token::Symbol(")") => return Ok(args),
                other => {
                    let offset = self
                        .tokens
                        .get(self.pos.saturating_sub(1))
                        .map_or(0, |spanned| spanned.offset);
                    return Err(ParseError::new(
                        format!("expected ',' or ')', found {}", describe(&other)),
                        offset,
                    ));
                }
            }
        }
    }

    fn type_specifier(&mut self) -> Result<TypeName, ParseError> {
        let offset = self.offset();
        let first = match self.next() {
            Token::Ident(name, _) => name,
            other => {
                return Err(ParseError::new(
                    format!("expected a type name, found {}", describe(&other)),
                    offset,
                ))
            }
        };
        if self.peek() == &Token::Symbol(".") {
            if let Some(Spanned {
                token: Token::Ident(second, _),
                ..
            }) = self.tokens.get(self.pos + 1)
            {
                let second = second.clone();
                self.pos += 2;
                return Ok(TypeName::new(Some(first), second));
            }
        }
        Ok(TypeName::new(None, first))
    }

    fn term(&mut self) -> Result<Expr, ParseError> {
        let offset = self.offset();
        match self.next() {
            Token::Number(text) => {
                // A number followed by a unit is a quantity.
                match self.peek().clone() {
                    Token::Str(unit) => {
                        self.pos += 1;
                        Ok(Expr::Literal(Literal::Quantity(text, unit), offset))
                    }
                    Token::Ident(unit, false) if CALENDAR_UNITS.contains(&unit.as_str()) => {
                        self.pos += 1;
                        Ok(Expr::Literal(Literal::Quantity(text, unit), offset))
                    }
                    _ => Ok(Expr::Literal(Literal::Number(text), offset)),
                }
            }
            Token::Str(text) => Ok(Expr::Literal(Literal::Str(text), offset)),
            Token::DateTime(text) => Ok(Expr::Literal(Literal::DateTime(text), offset)),
            Token::External(name) => Ok(Expr::External(name, offset)),
            Token::Special(name) => match name.as_str() {
                "$this" => Ok(Expr::This(offset)),
                "$index" => Ok(Expr::IndexVar(offset)),
                "$total" => Ok(Expr::Total(offset)),
                _ => Err(ParseError::new(
                    format!("unknown special variable {name}"),
                    offset,
                )),
            },
            Token::Symbol("(") => {
                let inner = self.expression(0)?;
                self.expect(")")?;
                Ok(inner)
            }
            Token::Symbol("{") => {
                self.expect("}")?;
                Ok(Expr::Literal(Literal::Empty, offset))
            }
            Token::Ident(name, delimited) => {
                if !delimited && (name == "true" || name == "false") {
                    return Ok(Expr::Literal(Literal::Bool(name == "true"), offset));
                }
                if self.peek() == &Token::Symbol("(") {
                    check_function(&name, offset)?;
                    let args = self.arguments()?;
                    return Ok(Expr::Call(None, name, args, offset));
                }
                Ok(Expr::Ident(Name::new(name), offset))
            }
            other => Err(ParseError::new(
                format!("expected an expression, found {}", describe(&other)),
                offset,
            )),
        }
    }
}
