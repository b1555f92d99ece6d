#include "plot.h"

#include <math.h>
#include <string.h>

#include "hdr.h"

#define W 900
#define H 760
#define X0 90.0
#define X1 860.0
#define LAT_TOP 70.0
#define LAT_BOT 370.0
#define RPS_TOP 470.0
#define RPS_BOT 700.0
#define MAX_POINTS 4096

struct pts {
  double x[MAX_POINTS], v[MAX_POINTS]; /* 1/(1-p) (0: the 100% step), us */
  size_t n;
};

static void collect(const hdr_point *pt, void *arg) {
  struct pts *p = arg;
  if (p->n == MAX_POINTS)
    return;
  p->x[p->n] = pt->last ? 0.0 : 1.0 / (1.0 - pt->level);
  p->v[p->n++] = (double)pt->value / 1000.0;
}

/* 1, 2 or 5 times a power of ten, at least v (and above 0). */
static double nice_ceil(double v) {
  if (!(v > 0))
    return 1.0;
  double e = pow(10.0, floor(log10(v)));
  for (int i = 0; i < 3; i++) {
    double m = (double[]){1, 2, 5}[i] * e;
    if (m >= v * (1 - 1e-9))
      return m;
  }
  return 10.0 * e;
}

/* An axis from 0 past v: a step of 1, 2 or 5 times a power of ten, at most
 * about `most` steps; returns the step, the steps in *n. */
static double axis(double v, int most, int *n) {
  double step = nice_ceil(v / most);
  *n = (int)ceil(v / step - 1e-9);
  if (*n < 1)
    *n = 1;
  return step;
}

/* A number for an axis: 1500, 25k, 1.5M. */
static void num(char *buf, size_t len, double v) {
  if (v >= 1e6)
    snprintf(buf, len, "%gM", v / 1e6);
  else if (v >= 1e4)
    snprintf(buf, len, "%gk", v / 1e3);
  else
    snprintf(buf, len, "%g", v);
}

static void escaped(FILE *out, const char *s) {
  for (; *s; s++) {
    if (*s == '&')
      fputs("&amp;", out);
    else if (*s == '<')
      fputs("&lt;", out);
    else if (*s == '>')
      fputs("&gt;", out);
    else if (*s == '"')
      fputs("&quot;", out);
    else if ((unsigned char)*s >= 0x20)
      fputc(*s, out);
  }
}

/* The latency axis: log10 of us from lo to hi (whole decades), so that a
 * tail of seconds and a median of microseconds both show. */
struct yrange {
  int lo, hi;
};

static double lat_y(const struct yrange *r, double us) {
  double l = us > 0 ? log10(us) : r->lo;
  l = l < r->lo ? r->lo : l > r->hi ? r->hi : l;
  return LAT_BOT - (LAT_BOT - LAT_TOP) * (l - r->lo) / (r->hi - r->lo);
}

/* A path of the points: x of 1/(1-p) on `decades` decades, y of us. */
static void lat_path(FILE *out, const char *id, const char *colour,
                     const struct pts *p, int decades,
                     const struct yrange *r) {
  fprintf(out,
          "<path id=\"%s\" fill=\"none\" stroke=\"%s\" "
          "stroke-width=\"2\" d=\"",
          id, colour);
  for (size_t i = 0; i < p->n; i++) {
    double lx = p->x[i] > 0 ? log10(p->x[i]) / decades : 1.0;
    double x = X0 + (X1 - X0) * (lx > 1 ? 1 : lx);
    fprintf(out, "%s%.2f %.2f", i ? " L" : "M", x, lat_y(r, p->v[i]));
  }
  fputs("\"/>\n", out);
}

/* The latency grid: one line a decade, labelled 0.1, 1, 10 ... 100k us. */
static void lat_grid(FILE *out, const struct yrange *r) {
  for (int d = r->lo; d <= r->hi; d++) {
    double y = lat_y(r, pow(10.0, d));
    char lab[32];
    num(lab, sizeof lab, pow(10.0, d));
    fprintf(out,
            "<line x1=\"%.0f\" y1=\"%.2f\" x2=\"%.0f\" y2=\"%.2f\" "
            "stroke=\"#ddd\"/>\n<text x=\"%.0f\" y=\"%.2f\" "
            "text-anchor=\"end\">%s%s</text>\n",
            X0, y, X1, y, X0 - 6, y + 4, lab, d == r->hi ? " us" : "");
  }
}

/* Whole decades around the positive values of both curves, from 0.1 us
 * at the lowest, at least two. */
static struct yrange lat_range(const struct pts *a, const struct pts *b) {
  double lo = 0, hi = 0;
  const struct pts *both[2] = {a, b};
  for (int k = 0; k < 2; k++)
    for (size_t i = 0; i < both[k]->n; i++) {
      double v = both[k]->v[i];
      if (v > 0 && (lo == 0 || v < lo))
        lo = v;
      hi = v > hi ? v : hi;
    }
  struct yrange r = {-1, 1};
  if (hi > 0) {
    r.lo = (int)floor(log10(lo < 0.1 ? 0.1 : lo) + 1e-9);
    r.hi = (int)ceil(log10(hi) - 1e-9);
  }
  if (r.hi < r.lo + 2)
    r.hi = r.lo + 2;
  return r;
}

static void axes(FILE *out, double top, double bot) {
  fprintf(out,
          "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" "
          "fill=\"none\" stroke=\"#444\"/>\n",
          X0, top, X1 - X0, bot - top);
}

/* The y grid: steps of 1, 2 or 5 times a power of ten from 0 past v,
 * labelled; returns the axis' top value. */
static double y_grid(FILE *out, double top, double bot, double v,
                     const char *unit) {
  int n = 0;
  double step = axis(v, 5, &n);
  for (int i = 0; i <= n; i++) {
    double y = bot - (bot - top) * i / n;
    char lab[32];
    num(lab, sizeof lab, step * i);
    fprintf(out,
            "<line x1=\"%.0f\" y1=\"%.2f\" x2=\"%.0f\" y2=\"%.2f\" "
            "stroke=\"#ddd\"/>\n<text x=\"%.0f\" y=\"%.2f\" "
            "text-anchor=\"end\">%s%s</text>\n",
            X0, y, X1, y, X0 - 6, y + 4, lab, i == n ? unit : "");
  }
  return step * n;
}

static void pct_label(char *buf, size_t len, int k) {
  if (k == 0) {
    snprintf(buf, len, "0%%");
    return;
  }
  /* 100 - 10^(2-k): 90, 99, 99.9 ... */
  snprintf(buf, len, "%.*f%%", k > 2 ? k - 2 : 0, 100.0 - pow(10.0, 2 - k));
}

/* A vertical grid line at x, labelled under the plot. */
static void x_tick(FILE *out, double x, double top, double bot,
                   const char *lab) {
  fprintf(out,
          "<line x1=\"%.2f\" y1=\"%.0f\" x2=\"%.2f\" y2=\"%.0f\" "
          "stroke=\"#ddd\"/>\n<text x=\"%.2f\" y=\"%.0f\" "
          "text-anchor=\"middle\">%s</text>\n",
          x, top, x, bot, x, bot + 18, lab);
}

/* The x axis of percentiles: 0%, 50%, then every decade of 1/(1-p). */
static void pct_axis(FILE *out, int decades) {
  char lab[32];
  for (int k = 0; k <= decades; k++) {
    pct_label(lab, sizeof lab, k);
    x_tick(out, X0 + (X1 - X0) * k / decades, LAT_TOP, LAT_BOT, lab);
  }
  x_tick(out, X0 + (X1 - X0) * log10(2.0) / decades, LAT_TOP, LAT_BOT, "50%");
  fprintf(out,
          "<text x=\"475\" y=\"%.0f\" text-anchor=\"middle\">percentile"
          " (log scale of 1/(1-p))</text>\n",
          LAT_BOT + 38);
}

/* The legend line of one series: its p50, p99 and max. */
static void legend(FILE *out, double y, const char *colour, const char *name,
                   const hist_t *h) {
  fprintf(out,
          "<text x=\"%.0f\" y=\"%.0f\" fill=\"%s\">%s: p50 %.1f, p99 %.1f, "
          "max %.1f us</text>\n",
          X0 + 10, y, colour, name, (double)hist_percentile(h, 50) / 1000.0,
          (double)hist_percentile(h, 99) / 1000.0,
          (double)hist_max(h) / 1000.0);
}

static void latency_plot(FILE *out, const plot_data *d, struct pts *call,
                         struct pts *wait) {
  double xmax = 100.0;
  for (size_t i = 0; i < call->n; i++)
    xmax = call->x[i] > xmax ? call->x[i] : xmax;
  struct yrange r = lat_range(call, wait);
  int decades = (int)ceil(log10(xmax) - 1e-9);
  decades = decades < 2 ? 2 : decades > 12 ? 12 : decades;
  fputs("<text x=\"475\" y=\"50\" text-anchor=\"middle\" font-size=\"15\">"
        "Latency by percentile (log scales)</text>\n",
        out);
  axes(out, LAT_TOP, LAT_BOT);
  lat_grid(out, &r);
  pct_axis(out, decades);
  lat_path(out, "latency-call", "#1f5fbf", call, decades, &r);
  lat_path(out, "latency-wait", "#d0601a", wait, decades, &r);
  legend(out, LAT_TOP + 18, "#1f5fbf", "whole call", d->lat);
  legend(out, LAT_TOP + 36, "#d0601a", "checkout wait", d->wait);
}

static void rps_plot(FILE *out, const plot_data *d) {
  double tlast = 1.0, ymax = 0;
  for (size_t i = 0; i < d->n; i++) {
    tlast = d->t[i] > tlast ? d->t[i] : tlast;
    ymax = d->rps[i] > ymax ? d->rps[i] : ymax;
  }
  int nt = 0;
  double tstep = axis(tlast, 10, &nt), tmax = tstep * nt;
  fprintf(out,
          "<text x=\"475\" y=\"%.0f\" text-anchor=\"middle\" "
          "font-size=\"15\">Requests/s, per second</text>\n",
          RPS_TOP - 20);
  axes(out, RPS_TOP, RPS_BOT);
  ymax = y_grid(out, RPS_TOP, RPS_BOT, ymax, "/s");
  for (int i = 0; i <= nt; i++) {
    char lab[32];
    num(lab, sizeof lab, tstep * i);
    x_tick(out, X0 + (X1 - X0) * i / nt, RPS_TOP, RPS_BOT, lab);
  }
  fprintf(out,
          "<text x=\"475\" y=\"%.0f\" text-anchor=\"middle\">seconds"
          "</text>\n",
          RPS_BOT + 38);
  if (d->warmup_s > 0) {
    double x = X0 + (X1 - X0) * d->warmup_s / tmax;
    fprintf(out,
            "<line id=\"warmup-end\" x1=\"%.2f\" y1=\"%.0f\" x2=\"%.2f\""
            " y2=\"%.0f\" stroke=\"#888\" stroke-dasharray=\"4 4\"/>\n",
            x, RPS_TOP, x, RPS_BOT);
  }
  fputs("<path id=\"rps\" fill=\"none\" stroke=\"#2a8a3a\" "
        "stroke-width=\"2\" d=\"",
        out);
  for (size_t i = 0; i < d->n; i++)
    fprintf(out, "%s%.2f %.2f", i ? " L" : "M", X0 + (X1 - X0) * d->t[i] / tmax,
            RPS_BOT - (RPS_BOT - RPS_TOP) * d->rps[i] / ymax);
  fputs("\"/>\n", out);
}

int plot_write(FILE *out, const plot_data *d) {
  static struct pts call, wait; /* the report's thread only */
  call.n = wait.n = 0;
  hdr_iterate(d->lat, collect, &call);
  hdr_iterate(d->wait, collect, &wait);
  fprintf(out,
          "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
          "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
          "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\""
          " font-size=\"12\">\n<rect width=\"%d\" height=\"%d\" "
          "fill=\"white\"/>\n<text x=\"475\" y=\"24\" "
          "text-anchor=\"middle\" font-size=\"13\">",
          W, H, W, H, W, H);
  escaped(out, d->title ? d->title : "cpool-bench");
  fputs("</text>\n", out);
  latency_plot(out, d, &call, &wait);
  rps_plot(out, d);
  fputs("</svg>\n", out);
  return ferror(out) ? -1 : 0;
}
