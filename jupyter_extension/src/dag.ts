// A picture of the pipeline: the steps as a small hand-made SVG DAG, drawn from the inputs
// and outputs the server's analysis computes (no graph library).
//
// Layout: a step's layer is one below the lowest layer of the steps it reads from (steps
// reading nothing from another step are on top); within a layer, steps sit under the mean
// position of their producers (notebook order breaks ties). An edge joins a producing step to
// a reading step and carries the names passed (label and tooltip). Each node shows the step's
// tag, its cells by number, the parameters it reads and, after a run, its duration and status;
// clicking it (or Enter) activates the step's first cell. Named steps of the same role are
// told apart by a shade and a border pattern (`nbops-dag-variant-N`); a step with a problem
// in one of its cells is outlined as an error.

import { IAnalysis, IRunCell, IStep, IStepInput } from './api';

const SVG_NS = 'http://www.w3.org/2000/svg';

/** A step's outcome in a run: the sum of its cells' durations and the worst status. */
export interface IStepRun {
  duration_s: number | null;
  status: 'ok' | 'error' | 'not run' | 'skipped';
}

export interface IDagOptions {
  /** Activate a cell of the notebook. */
  onCell: (index: number, id: string | null) => void;
  /** Each step's outcome in the last run, by step key. */
  runs?: Map<string, IStepRun> | null;
  /** The problems' messages by the index of the cell they are about. */
  problems?: Map<number, string[]>;
}

export interface IDagNode {
  step: IStep;
  layer: number;
  x: number;
  y: number;
  variant: number; // among the steps of the same role, in notebook order
  parameters: string[];
}

export interface IDagEdge {
  from: string;
  to: string;
  names: string[];
  /** For an edge past a layer's nodes: the x of its detour, right of those nodes. */
  via?: number;
}

export interface IDagLayout {
  nodes: IDagNode[];
  edges: IDagEdge[];
  width: number;
  height: number;
  nodeWidth: number;
  nodeHeight: number;
}

const PAD = 8;
const H_GAP = 16;
const V_GAP = 34;
const LINE = 14;
const CHAR_PX = 6.6; // an average character at the node font size (11px)

function inputName(input: IStepInput | string): string {
  return typeof input === 'string' ? input : input.name;
}

/** Each step's outcome from a run's cells: the durations summed; the status an error if a
 * cell failed, else "not run" if a cell did not run, else "ok". */
export function stepRuns(cells: IRunCell[] | null | undefined): Map<string, IStepRun> {
  const runs = new Map<string, IStepRun>();
  const rank: Record<IStepRun['status'], number> = { error: 3, 'not run': 2, ok: 1, skipped: 0 };
  for (const cell of cells ?? []) {
    if (!cell.role) {
      continue;
    }
    const status = (cell.status in rank ? cell.status : 'not run') as IStepRun['status'];
    const duration = typeof cell.duration_s === 'number' ? cell.duration_s : null;
    const seen = runs.get(cell.role);
    if (!seen) {
      runs.set(cell.role, { duration_s: duration, status });
      continue;
    }
    if (duration !== null) {
      seen.duration_s = (seen.duration_s ?? 0) + duration;
    }
    if (rank[status] > rank[seen.status]) {
      seen.status = status;
    }
  }
  return runs;
}

/** Where each step goes: layers from the step-to-step inputs, positions within a layer. */
export function layoutDag(analysis: IAnalysis): IDagLayout {
  const steps = analysis.steps;
  const keys = new Set(steps.map(s => s.key));
  const edges: IDagEdge[] = [];
  const layerOf = new Map<string, number>();
  const producers = new Map<string, string[]>();
  for (const step of steps) {
    const byProducer = new Map<string, string[]>();
    for (const input of step.inputs) {
      if (typeof input === 'string' || input.source !== 'step' || !input.step) {
        continue;
      }
      if (!keys.has(input.step) || input.step === step.key) {
        continue;
      }
      const names = byProducer.get(input.step) ?? [];
      names.push(input.name);
      byProducer.set(input.step, names);
    }
    let layer = 0;
    for (const [from, names] of byProducer) {
      edges.push({ from, to: step.key, names });
      // Producers come earlier in the notebook, so their layer is known (0 if not yet).
      layer = Math.max(layer, (layerOf.get(from) ?? 0) + 1);
    }
    producers.set(step.key, [...byProducer.keys()]);
    layerOf.set(step.key, layer);
  }

  const roleCount = new Map<string, number>();
  const nodes: IDagNode[] = steps.map(step => {
    const variant = roleCount.get(step.role) ?? 0;
    roleCount.set(step.role, variant + 1);
    const parameters = step.inputs
      .filter(i => typeof i !== 'string' && (i.source === 'parameter' || i.source === 'parameters'))
      .map(inputName);
    return { step, layer: layerOf.get(step.key) ?? 0, x: 0, y: 0, variant, parameters };
  });

  // Node size: wide enough for the longest tag, within bounds.
  const longest = Math.max(8, ...steps.map(s => s.key.length));
  const nodeWidth = Math.round(Math.min(200, Math.max(120, longest * CHAR_PX + 20)));
  const lines = Math.max(...nodes.map(n => 2 + (n.parameters.length ? 1 : 0)), 2) + 1;
  const nodeHeight = 8 + lines * LINE;

  const layers: IDagNode[][] = [];
  for (const node of nodes) {
    (layers[node.layer] ??= []).push(node);
  }
  const maxInLayer = Math.max(1, ...layers.map(l => (l ? l.length : 0)));
  const width = PAD * 2 + maxInLayer * nodeWidth + (maxInLayer - 1) * H_GAP;
  const byKey = new Map(nodes.map(n => [n.step.key, n]));
  const order = new Map(steps.map((s, i) => [s.key, i]));
  layers.forEach((layer, depth) => {
    if (!layer) {
      return;
    }
    if (depth > 0) {
      // Under the producers' mean position, to keep edges short and uncrossed.
      const centre = (n: IDagNode): number => {
        const xs = (producers.get(n.step.key) ?? []).map(k => byKey.get(k)!.x);
        return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : width / 2;
      };
      layer.sort((a, b) => centre(a) - centre(b) || order.get(a.step.key)! - order.get(b.step.key)!);
    }
    const used = layer.length * nodeWidth + (layer.length - 1) * H_GAP;
    let x = (width - used) / 2;
    for (const node of layer) {
      node.x = x;
      node.y = PAD + depth * (nodeHeight + V_GAP);
      x += nodeWidth + H_GAP;
    }
  });
  // An edge skipping layers would run under their nodes: it goes round them on the right,
  // each such edge a little further out, and the picture widens to hold it and its label.
  let right = width;
  let detours = 0;
  for (const edge of edges) {
    const a = byKey.get(edge.from)!;
    const b = byKey.get(edge.to)!;
    const between = nodes.filter(n => n.layer > a.layer && n.layer < b.layer);
    if (!between.length) {
      continue;
    }
    const past = Math.max(...between.map(n => n.x + nodeWidth));
    edge.via = past + 10 + 8 * detours++;
    const label = Math.min(edge.names.join(', ').length * CHAR_PX, 90);
    right = Math.max(right, edge.via + 4 + label + PAD);
  }
  const height = PAD * 2 + layers.length * nodeHeight + Math.max(0, layers.length - 1) * V_GAP;
  return { nodes, edges, width: Math.ceil(right), height, nodeWidth, nodeHeight };
}

function svg(tag: string, attrs: Record<string, string | number> = {}, ...children: (Node | string)[]): SVGElement {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    el.setAttribute(key, String(value));
  }
  for (const child of children) {
    el.append(child);
  }
  return el;
}

function fit(text: string, width: number): string {
  const max = Math.max(4, Math.floor(width / CHAR_PX));
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function seconds(value: number | null): string {
  if (value === null) {
    return '';
  }
  return value < 10 ? `${value.toFixed(2)} s` : `${value.toFixed(1)} s`;
}

const STATUS_TEXT: Record<IStepRun['status'], string> = {
  ok: '✓ ok',
  error: '✗ failed',
  'not run': '– not run',
  skipped: 'skipped'
};

/** The DAG of the analysis' steps, as an SVG in a scrolling box. */
export function renderDag(analysis: IAnalysis, options: IDagOptions): HTMLElement {
  const box = document.createElement('div');
  box.className = 'nbops-dag';
  if (!analysis.steps.length) {
    return box;
  }
  const layout = layoutDag(analysis);
  const { nodeWidth: w, nodeHeight: h } = layout;
  const root = svg('svg', {
    class: 'nbops-dag-svg',
    width: layout.width,
    height: layout.height,
    viewBox: `0 0 ${layout.width} ${layout.height}`,
    role: 'img',
    'aria-label': `Pipeline of ${analysis.steps.length} steps`
  });
  const markerId = `nbops-dag-arrow-${Math.random().toString(36).slice(2, 8)}`;
  root.append(
    svg(
      'defs',
      {},
      svg(
        'marker',
        { id: markerId, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
        svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'nbops-dag-arrow' })
      )
    )
  );
  const byKey = new Map(layout.nodes.map(n => [n.step.key, n]));

  const edgeLayer = svg('g', { class: 'nbops-dag-edges' });
  for (const edge of layout.edges) {
    const a = byKey.get(edge.from)!;
    const b = byKey.get(edge.to)!;
    const x1 = a.x + w / 2;
    const y1 = a.y + h;
    const x2 = b.x + w / 2;
    const y2 = b.y;
    const bend = Math.max(14, (y2 - y1) / 2);
    const label = edge.names.join(', ');
    const v = edge.via;
    const r = 12; // the detour's corner
    const d =
      v === undefined
        ? `M ${x1} ${y1} C ${x1} ${y1 + bend}, ${x2} ${y2 - bend}, ${x2} ${y2 - 1}`
        : `M ${x1} ${y1} C ${x1} ${y1 + r}, ${v} ${y1 + r}, ${v} ${y1 + 2 * r} ` +
          `L ${v} ${y2 - 2 * r} C ${v} ${y2 - r}, ${x2} ${y2 - r}, ${x2} ${y2 - 1}`;
    const labelAt =
      v === undefined
        ? { x: (x1 + x2) / 2 + 4, y: (y1 + y2) / 2 + 4, width: layout.width - (x1 + x2) / 2 - 8 }
        : { x: v + 4, y: (y1 + y2) / 2 + 4, width: layout.width - v - 4 };
    edgeLayer.append(
      svg(
        'g',
        { class: 'nbops-dag-edge', 'data-from': edge.from, 'data-to': edge.to, 'data-names': label },
        svg('title', {}, `${edge.from} → ${edge.to}: ${label}`),
        svg('path', { d, 'marker-end': `url(#${markerId})` }),
        svg(
          'text',
          { x: labelAt.x, y: labelAt.y, class: 'nbops-dag-edge-label' },
          fit(label, labelAt.width)
        )
      )
    );
  }
  root.append(edgeLayer);

  const nodeLayer = svg('g', { class: 'nbops-dag-nodes' });
  for (const node of layout.nodes) {
    const step = node.step;
    const run = options.runs?.get(step.key);
    const problems = step.cells.flatMap(c => options.problems?.get(c.index) ?? []);
    const classes = [
      'nbops-dag-node',
      `nbops-role-${step.role}`,
      `nbops-dag-variant-${node.variant % 3}`,
      run ? `nbops-dag-status-${run.status.replace(' ', '-')}` : '',
      problems.length ? 'nbops-dag-problem' : ''
    ].filter(Boolean);
    const cellText = `cell${step.cells.length > 1 ? 's' : ''} ${step.cells.map(c => c.index + 1).join(', ')}`;
    const tip = [
      `${step.key}: ${cellText}`,
      node.parameters.length ? `parameters: ${node.parameters.join(', ')}` : '',
      step.outputs.length ? `out: ${step.outputs.map(inputName).join(', ')}` : '',
      run ? `last run: ${STATUS_TEXT[run.status]}${run.duration_s !== null ? `, ${seconds(run.duration_s)}` : ''}` : '',
      ...problems.map(p => `problem: ${p}`),
      'Click to go to the step\'s first cell'
    ].filter(Boolean);
    const g = svg('g', {
      class: classes.join(' '),
      'data-step': step.key,
      'data-cells': step.cells.map(c => c.index).join(','),
      transform: `translate(${node.x} ${node.y})`,
      tabindex: 0,
      role: 'button',
      'aria-label': tip.join('; ')
    });
    const go = () => {
      const first = step.cells[0];
      if (first) {
        options.onCell(first.index, first.id);
      }
    };
    g.addEventListener('click', go);
    g.addEventListener('keydown', (event: Event) => {
      const key = (event as KeyboardEvent).key;
      if (key === 'Enter' || key === ' ') {
        event.preventDefault();
        go();
      }
    });
    g.append(
      svg('title', {}, tip.join('\n')),
      svg('rect', { class: 'nbops-dag-box', width: w, height: h, rx: 4, ry: 4 }),
      svg('rect', { class: 'nbops-dag-bar', width: 4, height: h, rx: 2, ry: 2 })
    );
    let y = 4 + LINE - 2;
    const line = (text: string, cls: string) => {
      g.append(svg('text', { x: 10, y, class: cls }, fit(text, w - 14)));
      y += LINE;
    };
    line(step.key, 'nbops-dag-title');
    line(cellText, 'nbops-dag-detail nbops-dag-cells');
    if (node.parameters.length) {
      line(`⚙ ${node.parameters.join(', ')}`, 'nbops-dag-detail nbops-dag-params');
    }
    if (problems.length) {
      line(`⚠ ${problems.length} problem${problems.length > 1 ? 's' : ''}`, 'nbops-dag-detail nbops-dag-problem-text');
    } else if (run) {
      const time = run.duration_s !== null ? ` · ${seconds(run.duration_s)}` : '';
      line(`${STATUS_TEXT[run.status]}${time}`, 'nbops-dag-detail nbops-dag-run');
    }
    nodeLayer.append(g);
  }
  root.append(nodeLayer);
  box.append(root);
  return box;
}
