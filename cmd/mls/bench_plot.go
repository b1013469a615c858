package main

import (
	"fmt"
	"image/color"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// plotBench draws the median time of each operation and tree shape
// against N on log axes, each with its bound dashed in the same colour,
// into the SVG file path.
func plotBench(path string, rs []benchResult) error {
	p := plot.New()
	p.Title.Text = "mls bench: median time against group size (bounds dashed)"
	p.X.Label.Text = "members N"
	p.Y.Label.Text = "ms"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Legend.Left = true
	type key struct{ op, tree string }
	var keys []key
	series := map[key][]benchResult{}
	for _, r := range rs {
		k := key{r.Op, r.Tree}
		if _, ok := series[k]; !ok {
			keys = append(keys, k)
		}
		series[k] = append(series[k], r)
	}
	for i, k := range keys {
		s := series[k]
		slices.SortFunc(s, func(a, b benchResult) int { return a.N - b.N })
		meas := make(plotter.XYs, len(s))
		bound := make(plotter.XYs, len(s))
		for j, r := range s {
			meas[j] = plotter.XY{X: float64(r.N), Y: max(r.MedianMS, 1e-4)}
			bound[j] = plotter.XY{X: float64(r.N), Y: max(r.BoundMS, 1e-4)}
		}
		c := plotutil.Color(i)
		l, pts, err := plotter.NewLinePoints(meas)
		if err != nil {
			return err
		}
		l.Color, pts.Color = c, c
		pts.Shape = plotutil.Shape(i)
		bl, err := plotter.NewLine(bound)
		if err != nil {
			return err
		}
		bl.Color = withAlpha(c, 0xb0)
		bl.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		p.Add(l, pts, bl)
		p.Legend.Add(fmt.Sprintf("%s (%s)", k.op, k.tree), l, pts)
	}
	return p.Save(9*vg.Inch, 7*vg.Inch, path)
}

func withAlpha(c color.Color, a uint8) color.Color {
	r, g, b, _ := c.RGBA()
	return color.NRGBA{R: uint8(r >> 8), G: uint8(g >> 8), B: uint8(b >> 8), A: a}
}
