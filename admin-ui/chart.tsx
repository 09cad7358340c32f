/** A live line chart (uPlot) of one number per series over time: the projections' lag. */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';

export interface Samples {
  /** Unix seconds of each sample. */
  times: number[];
  /** One line per series; `null` where a sample had no value. */
  series: Map<string, (number | null)[]>;
}

const COLOURS = ['#2563eb', '#dc2626', '#059669', '#d97706', '#7c3aed', '#db2777', '#0891b2'];

export function LagChart(props: { title: string; unit: string; samples: Samples; testId: string }) {
  const box = useRef<HTMLDivElement>(null);
  const chart = useRef<{ plot: uPlot; keys: string } | null>(null);
  const names = [...props.samples.series.keys()];
  const keys = names.join('\n');

  useEffect(() => {
    const element = box.current;
    if (!element) return;
    const data = [
      props.samples.times,
      ...names.map((n) => props.samples.series.get(n)!),
    ] as uPlot.AlignedData;
    if (chart.current && chart.current.keys === keys) {
      chart.current.plot.setData(data);
      return;
    }
    chart.current?.plot.destroy();
    const plot = new uPlot(
      {
        width: Math.max(320, element.clientWidth),
        height: 200,
        legend: { show: true },
        scales: {
          // One sample has no span: show the minute before it.
          x: { time: true, range: (_u, min, max) => (min === max ? [min - 60, max] : [min, max]) },
          y: { range: (_u, _min, max) => [0, Math.max(1, max)] },
        },
        axes: [{}, { label: props.unit, size: 60 }],
        series: [
          {},
          ...names.map((label, i) => ({
            label,
            stroke: COLOURS[i % COLOURS.length]!,
            width: 2,
            spanGaps: false,
          })),
        ],
      },
      data,
      element,
    );
    chart.current = { plot, keys };
  });

  useEffect(() => () => chart.current?.plot.destroy(), []);

  return (
    <figure class="chart" data-testid={props.testId} data-samples={props.samples.times.length}>
      <figcaption>{props.title}</figcaption>
      <div ref={box} />
    </figure>
  );
}
