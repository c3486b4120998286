//! A small typed model of Grafana's dashboard JSON (classic, schemaVersion
//! based). Only what our dashboards use; every struct serializes to fields of
//! Grafana's published dashboard JSON Schema, which a test enforces.

use serde::Serialize;

pub const SCHEMA_VERSION: u32 = 39;
pub const DATASOURCE_VAR: &str = "${datasource}";

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dashboard {
    pub uid: String,
    pub title: String,
    pub description: String,
    pub tags: Vec<String>,
    pub timezone: String,
    pub editable: bool,
    pub graph_tooltip: u8,
    pub time: TimeRange,
    pub refresh: String,
    pub schema_version: u32,
    pub version: u32,
    pub panels: Vec<Panel>,
    pub templating: Templating,
    pub annotations: Annotations,
    pub links: Vec<Link>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimeRange {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Templating {
    pub list: Vec<Variable>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Variable {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub label: String,
    pub query: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datasource: Option<DataSourceRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh: Option<u8>,
    pub multi: bool,
    pub include_all: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Annotations {
    pub list: Vec<Annotation>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Annotation {
    pub name: String,
    pub datasource: DataSourceRef,
    pub enable: bool,
    pub hide: bool,
    pub icon_color: String,
    pub expr: String,
    pub title_format: String,
    pub text_format: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Link {
    pub title: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub icon: String,
    pub tooltip: String,
    pub tags: Vec<String>,
    pub as_dropdown: bool,
    pub target_blank: bool,
    pub include_vars: bool,
    pub keep_time: bool,
}

impl Link {
    /// A dropdown of every dashboard carrying `tag`.
    pub fn tagged(title: &str, tag: &str) -> Self {
        Link {
            title: title.into(),
            kind: "dashboards".into(),
            icon: "external link".into(),
            tooltip: String::new(),
            tags: vec![tag.into()],
            as_dropdown: true,
            target_blank: false,
            include_vars: false,
            keep_time: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataSourceRef {
    #[serde(rename = "type")]
    pub kind: String,
    pub uid: String,
}

impl DataSourceRef {
    pub fn prometheus() -> Self {
        DataSourceRef {
            kind: "prometheus".into(),
            uid: DATASOURCE_VAR.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct GridPos {
    pub h: u32,
    pub w: u32,
    pub x: u32,
    pub y: u32,
}

/// A panel or a row (rows have `collapsed` and nested `panels`).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Panel {
    Row(RowPanel),
    Viz(Box<VizPanel>),
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RowPanel {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: u32,
    pub title: String,
    pub collapsed: bool,
    pub grid_pos: GridPos,
    pub panels: Vec<VizPanel>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VizPanel {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: u32,
    pub title: String,
    pub description: String,
    pub datasource: DataSourceRef,
    pub grid_pos: GridPos,
    pub targets: Vec<Target>,
    pub field_config: FieldConfigSource,
    pub options: Options,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_from: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    pub ref_id: String,
    pub datasource: DataSourceRef,
    pub expr: String,
    pub legend_format: String,
    pub instant: bool,
    pub range: bool,
    /// Query the histogram's trace exemplars too (linked to Tempo by the
    /// Prometheus datasource's `exemplarTraceIdDestinations`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub exemplar: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct FieldConfigSource {
    pub defaults: FieldConfig,
    pub overrides: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FieldConfig {
    pub unit: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decimals: Option<u32>,
    pub thresholds: Thresholds,
}

#[derive(Debug, Clone, Serialize)]
pub struct Thresholds {
    pub mode: &'static str,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// `None` serializes as null = -Infinity (the base step).
    pub value: Option<f64>,
    pub color: &'static str,
}

impl Thresholds {
    pub fn base(color: &'static str) -> Self {
        Thresholds {
            mode: "absolute",
            steps: vec![Step { value: None, color }],
        }
    }
    pub fn then(mut self, value: f64, color: &'static str) -> Self {
        self.steps.push(Step {
            value: Some(value),
            color,
        });
        self
    }
}

/// Panel options, typed per visualization.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Options {
    Stat(StatOptions),
    TimeSeries(TimeSeriesOptions),
    Table(TableOptions),
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatOptions {
    pub reduce_options: ReduceOptions,
    pub color_mode: &'static str,
    pub graph_mode: &'static str,
    pub text_mode: &'static str,
    pub justify_mode: &'static str,
    pub orientation: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReduceOptions {
    pub calcs: Vec<&'static str>,
    pub fields: String,
    pub values: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimeSeriesOptions {
    pub legend: Legend,
    pub tooltip: Tooltip,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Legend {
    pub display_mode: &'static str,
    pub placement: &'static str,
    pub show_legend: bool,
    pub calcs: Vec<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tooltip {
    pub mode: &'static str,
    pub sort: &'static str,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableOptions {
    pub show_header: bool,
    pub cell_height: &'static str,
}

/// Places panels left to right on Grafana's 24-column grid.
pub struct Builder {
    next_id: u32,
    x: u32,
    y: u32,
    row_h: u32,
    panels: Vec<Panel>,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    pub fn new() -> Self {
        Builder {
            next_id: 1,
            x: 0,
            y: 0,
            row_h: 0,
            panels: Vec::new(),
        }
    }

    fn id(&mut self) -> u32 {
        let i = self.next_id;
        self.next_id += 1;
        i
    }

    fn newline(&mut self) {
        if self.x > 0 {
            self.y += self.row_h;
            self.x = 0;
            self.row_h = 0;
        }
    }

    pub fn row(&mut self, title: &str) {
        self.newline();
        let id = self.id();
        self.panels.push(Panel::Row(RowPanel {
            kind: "row",
            id,
            title: title.into(),
            collapsed: false,
            grid_pos: GridPos {
                h: 1,
                w: 24,
                x: 0,
                y: self.y,
            },
            panels: vec![],
        }));
        self.y += 1;
    }

    fn place(&mut self, w: u32, h: u32) -> GridPos {
        if self.x + w > 24 {
            self.newline();
        }
        let pos = GridPos {
            h,
            w,
            x: self.x,
            y: self.y,
        };
        self.x += w;
        self.row_h = self.row_h.max(h);
        pos
    }

    pub fn add(&mut self, w: u32, h: u32, p: PanelSpec) {
        let grid_pos = self.place(w, h);
        let id = self.id();
        let targets = p
            .queries
            .into_iter()
            .enumerate()
            .map(|(i, (expr, legend))| Target {
                ref_id: ((b'A' + (i % 26) as u8) as char).to_string(),
                datasource: DataSourceRef::prometheus(),
                expr,
                legend_format: legend,
                instant: p.kind == "stat" || p.kind == "table",
                range: p.kind == "timeseries",
                exemplar: p.exemplars && p.kind == "timeseries",
            })
            .collect();
        let options = match p.kind {
            "stat" => Options::Stat(StatOptions {
                reduce_options: ReduceOptions {
                    calcs: vec!["lastNotNull"],
                    fields: String::new(),
                    values: false,
                },
                color_mode: "value",
                graph_mode: "none",
                text_mode: "auto",
                justify_mode: "auto",
                orientation: "auto",
            }),
            "table" => Options::Table(TableOptions {
                show_header: true,
                cell_height: "sm",
            }),
            _ => Options::TimeSeries(TimeSeriesOptions {
                legend: Legend {
                    display_mode: "list",
                    placement: "bottom",
                    show_legend: true,
                    calcs: vec![],
                },
                tooltip: Tooltip {
                    mode: "multi",
                    sort: "desc",
                },
            }),
        };
        self.panels.push(Panel::Viz(Box::new(VizPanel {
            kind: p.kind,
            id,
            title: p.title,
            description: p.description,
            datasource: DataSourceRef::prometheus(),
            grid_pos,
            targets,
            field_config: FieldConfigSource {
                defaults: FieldConfig {
                    unit: p.unit.into(),
                    min: p.min,
                    max: p.max,
                    decimals: p.decimals,
                    thresholds: p.thresholds,
                },
                overrides: vec![],
            },
            options,
            time_from: p.time_from,
        })));
    }

    pub fn finish(self) -> Vec<Panel> {
        self.panels
    }
}

/// What a caller says about a panel; the builder does ids and layout.
pub struct PanelSpec {
    pub kind: &'static str,
    pub title: String,
    pub description: String,
    pub queries: Vec<(String, String)>,
    pub unit: &'static str,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub decimals: Option<u32>,
    pub thresholds: Thresholds,
    pub time_from: Option<String>,
    pub exemplars: bool,
}

impl PanelSpec {
    pub fn new(kind: &'static str, title: impl Into<String>, unit: &'static str) -> Self {
        PanelSpec {
            kind,
            title: title.into(),
            description: String::new(),
            queries: Vec::new(),
            unit,
            min: None,
            max: None,
            decimals: None,
            thresholds: Thresholds::base("green"),
            time_from: None,
            exemplars: false,
        }
    }
    pub fn stat(title: impl Into<String>, unit: &'static str) -> Self {
        Self::new("stat", title, unit)
    }
    pub fn timeseries(title: impl Into<String>, unit: &'static str) -> Self {
        Self::new("timeseries", title, unit)
    }
    pub fn table(title: impl Into<String>) -> Self {
        Self::new("table", title, "none")
    }
    pub fn query(mut self, expr: impl Into<String>, legend: impl Into<String>) -> Self {
        self.queries.push((expr.into(), legend.into()));
        self
    }
    pub fn describe(mut self, d: impl Into<String>) -> Self {
        self.description = d.into();
        self
    }
    pub fn range(mut self, min: f64, max: f64) -> Self {
        self.min = Some(min);
        self.max = Some(max);
        self
    }
    pub fn decimals(mut self, d: u32) -> Self {
        self.decimals = Some(d);
        self
    }
    pub fn thresholds(mut self, t: Thresholds) -> Self {
        self.thresholds = t;
        self
    }
    pub fn time_from(mut self, t: impl Into<String>) -> Self {
        self.time_from = Some(t.into());
        self
    }
    /// Show the trace exemplars of the histogram the queries read.
    pub fn exemplars(mut self) -> Self {
        self.exemplars = true;
        self
    }
}

/// A dashboard with the datasource variable and an alerts annotation.
pub fn dashboard(
    uid: &str,
    title: &str,
    description: &str,
    tags: &[&str],
    timezone: &str,
    panels: Vec<Panel>,
    extra_vars: Vec<Variable>,
) -> Dashboard {
    let mut list = vec![Variable {
        kind: "datasource".into(),
        name: "datasource".into(),
        label: "Prometheus".into(),
        query: "prometheus".into(),
        datasource: None,
        refresh: None,
        multi: false,
        include_all: false,
    }];
    list.extend(extra_vars);
    Dashboard {
        uid: uid.into(),
        title: title.into(),
        description: description.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        timezone: timezone.into(),
        editable: false,
        graph_tooltip: 1,
        time: TimeRange {
            from: "now-6h".into(),
            to: "now".into(),
        },
        refresh: "1m".into(),
        schema_version: SCHEMA_VERSION,
        version: 1,
        panels,
        templating: Templating { list },
        annotations: Annotations {
            list: vec![Annotation {
                name: "SLO alerts".into(),
                datasource: DataSourceRef::prometheus(),
                enable: true,
                hide: false,
                icon_color: "red".into(),
                expr: "ALERTS{alertstate=\"firing\", slo!=\"\"}".into(),
                title_format: "{{alertname}}".into(),
                text_format: "{{slo}} tier {{tier}} ({{severity}})".into(),
            }],
        },
        links: vec![Link::tagged("SLO dashboards", "slo")],
    }
}

/// A label-values query variable (e.g. `service`).
pub fn label_variable(name: &str, label: &str, metric: &str) -> Variable {
    Variable {
        kind: "query".into(),
        name: name.into(),
        label: label.into(),
        query: format!("label_values({metric}, {name})"),
        datasource: Some(DataSourceRef::prometheus()),
        refresh: Some(2),
        multi: false,
        include_all: false,
    }
}
