//! Lists: `GET /api/imports` and an import's events, with pages, sorts and filters.

use super::*;

/// Percent-encodes a query component, leaving the characters Commerce Layer's own links
/// show bare (`[`, `]`, `,`).
pub(super) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'~'
            | b'['
            | b']'
            | b',' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A page request: `page[number]` and `page[size]`.
pub(super) struct PageRequest {
    pub(super) number: u64,
    pub(super) size: u64,
}

pub(super) fn page_value(name: &str, value: &str, max: u64) -> ClResult<u64> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| {
            ClError::param(
                "INVALID_PAGE_VALUE",
                name,
                format!(
                    "{value:?} is not a valid value for {name}: it must be between 1 and {max}"
                ),
            )
        })
}

/// `meta` and `links` of a page of a collection at `path`; `extra` are the request's other
/// parameters, kept in every link.
pub(super) fn paging(
    base: &str,
    path: &str,
    page: &PageRequest,
    total: u64,
    extra: &[(String, String)],
) -> (Value, Value) {
    let page_count = total.div_ceil(page.size);
    let tail: String = extra
        .iter()
        .map(|(k, v)| format!("&{}={}", encode(k), encode(v)))
        .collect();
    let link = |n: u64| {
        format!(
            "{base}{path}?page[number]={n}&page[size]={}{tail}",
            page.size
        )
    };
    let mut links = Map::new();
    links.insert("first".into(), Value::String(link(1)));
    if page.number > 1 {
        links.insert(
            "prev".into(),
            Value::String(link((page.number - 1).min(page_count.max(1)))),
        );
    }
    if page.number < page_count {
        links.insert("next".into(), Value::String(link(page.number + 1)));
    }
    links.insert("last".into(), Value::String(link(page_count.max(1))));
    (
        json!({"record_count": total, "page_count": page_count}),
        Value::Object(links),
    )
}

/// The list query, checked.
pub(super) struct ListQuery {
    pub(super) page: PageRequest,
    pub(super) search: ImportSearch,
    pub(super) fields: Option<Vec<String>>,
    /// Parameters other than the page's, for links.
    pub(super) extra: Vec<(String, String)>,
}

pub(super) fn sparse_fields(value: &str) -> ClResult<Vec<String>> {
    value
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| {
            if ATTRIBUTES.contains(&n) && n != "_interrupt" {
                Ok(n.to_owned())
            } else {
                Err(ClError::param(
                    "INVALID_FIELD",
                    "fields[imports]",
                    format!("{n} is not a valid field for imports."),
                ))
            }
        })
        .collect()
}

/// `include` is refused on every route: events are read at `/api/imports/{id}/events`.
pub(super) fn invalid_include(value: &str) -> ClError {
    ClError::param(
        "INVALID_INCLUDE",
        "include",
        format!("{value} is not a valid includable relationship of imports"),
    )
}

pub(super) fn parse_list_query(pairs: Vec<(String, String)>) -> ClResult<ListQuery> {
    let mut page = PageRequest {
        number: 1,
        size: DEFAULT_PAGE_SIZE,
    };
    let mut search = ImportSearch::default();
    let mut fields = None;
    let mut extra = Vec::new();
    for (name, value) in pairs {
        match name.as_str() {
            "page[number]" => {
                page.number = page_value(&name, &value, u64::from(u32::MAX))?;
                continue;
            }
            "page[size]" => {
                page.size = page_value(&name, &value, MAX_PAGE_SIZE)?;
                continue;
            }
            "sort" => {
                for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let (descending, field) =
                        item.strip_prefix('-').map_or((false, item), |f| (true, f));
                    match sort_key(field) {
                        Some(Some(key)) => search.sort.push(SortSpec { key, descending }),
                        Some(None) => {}
                        None => {
                            return Err(ClError::param(
                                "INVALID_SORT_CRITERIA",
                                "sort",
                                format!("{field} is not a valid sort criteria for imports"),
                            ));
                        }
                    }
                }
            }
            "fields[imports]" => fields = Some(sparse_fields(&value)?),
            "include" => return Err(invalid_include(&value)),
            _ => {
                let Some(predicate) = name
                    .strip_prefix("filter[q][")
                    .and_then(|r| r.strip_suffix(']'))
                else {
                    return Err(ClError::param(
                        "PARAM_NOT_ALLOWED",
                        &name,
                        format!("{name} is not allowed."),
                    ));
                };
                search.conditions.push(filter(&name, predicate, &value)?);
            }
        }
        extra.push((name, value));
    }
    if search.sort.is_empty() {
        // Newest first.
        search.sort.push(SortSpec {
            key: SortKey::Field(ImportField::CreatedAt),
            descending: true,
        });
    }
    search.limit = u32::try_from(page.size).unwrap_or(u32::MAX);
    search.offset = (page.number - 1).saturating_mul(page.size);
    Ok(ListQuery {
        page,
        search,
        fields,
        extra,
    })
}

pub(super) fn query_pairs(
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ClResult<Vec<(String, String)>> {
    query
        .map(|Query(p)| p)
        .map_err(|e| ClError::param("BAD_REQUEST", "query", e.body_text()))
}

/// `GET /api/imports`.
pub(super) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ClResult<Response> {
    let ws = authorize(&state, &headers, Role::Viewer).await?;
    let q = parse_list_query(query_pairs(query)?)?;
    let found = state.store.search_imports(ws.id, &q.search).await?;
    let base = base_url(&headers);
    let keys = table_keys(&state, &ws).await?;
    let mut data = Vec::with_capacity(found.imports.len());
    for i in &found.imports {
        data.push(
            full_resource(
                &state,
                &ws,
                &base,
                &keys,
                i,
                LIST_ERRORS,
                q.fields.as_deref(),
            )
            .await?,
        );
    }
    let (meta, links) = paging(&base, "/api/imports", &q.page, found.total, &q.extra);
    Ok(jsonapi(
        StatusCode::OK,
        json!({"data": data, "meta": meta, "links": links}),
    ))
}
