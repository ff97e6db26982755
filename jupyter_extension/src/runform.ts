// The panel's run form and what it shows of the run (the Actions section's "Run with
// parameters…", drawn by panel.ts):
// - one input per parameter of the parameters cell, by its type: a number field for `int`
//   (whole steps) and `float` (any step), a checkbox for `bool`, a password field for a secret
//   one, text otherwise; the values are checked before the run is asked for, and a bad one
//   refused with one line naming the parameter (no run starts);
// - while the run goes, its progress cell by cell (`Cell 3 of 6 running`), a bar and the steps
//   with ticks, from the run job's `progress` (labserver/progress.py: papermill's output
//   notebook as it is saved after each cell);
// - at the end the gate verdicts (the run's own, else the project's `gates` checked), a hint
//   when the run recorded no metrics, the run's warnings;
// - whether Build bundle can be used for the run (a completed run with a model) and why not.

import { IParameter, IRunJob } from './api';
import { Children, h } from './dom';


/** `int` and `float` parameters get number fields; others (str, bool, lists, unions) not. */
export function numericKind(p: IParameter): 'int' | 'float' | null {
  const type = p.type.trim();
  return type === 'int' || type === 'float' ? type : null;
}

/** The form's field for one parameter; `onChange` gets the field's text (or the checkbox's
 * state) at each change. */
export function parameterInput(
  p: IParameter,
  id: string,
  current: string | boolean | undefined,
  onChange: (value: string | boolean) => void
): HTMLElement {
  if (p.type === 'bool') {
    return h('input', {
      id,
      type: 'checkbox',
      name: p.name,
      class: 'nbops-param-input',
      checked: current === true,
      onchange: (e: Event) => onChange((e.target as HTMLInputElement).checked)
    });
  }
  const kind = p.secret ? null : numericKind(p);
  const input = h('input', {
    id,
    type: p.secret ? 'password' : kind ? 'number' : 'text',
    step: kind === 'int' ? '1' : kind === 'float' ? 'any' : undefined,
    inputmode: kind === 'int' ? 'numeric' : kind === 'float' ? 'decimal' : undefined,
    name: p.name,
    class: 'jp-mod-styled nbops-param-input',
    placeholder: p.secret ? '(secret: empty keeps the notebook value)' : undefined,
    oninput: (e: Event) => {
      const field = e.target as HTMLInputElement;
      field.removeAttribute('aria-invalid');
      onChange(field.value);
    }
  }) as HTMLInputElement;
  input.value = String(current ?? '');
  return input;
}

/** A field's text as the number its parameter takes, or why it is not one. */
function readNumber(p: IParameter, kind: 'int' | 'float', text: string): number | string {
  const example = typeof p.default === 'number' ? `, e.g. ${p.default}` : '';
  const what = kind === 'int' ? 'a whole number' : 'a number';
  const value = text.trim() === '' ? NaN : Number(text);
  if (!Number.isFinite(value)) {
    return `${p.name} expects ${what} (${p.type}): enter one${example}`;
  }
  if (kind === 'int' && !Number.isInteger(value)) {
    return `${p.name} expects a whole number (int), not ${text.trim()}: enter one${example}`;
  }
  return value;
}

function sameValue(a: unknown, b: unknown): boolean {
  return typeof a === 'number' && typeof b === 'number' ? a === b : JSON.stringify(a) === JSON.stringify(b);
}

/** What the form sends: the parameters whose value differs from the notebook's, typed; or
 * the first bad value (`error`, one line; `name`: its parameter). `initial(p)` is the text
 * the field started with; a field a browser found no number in (`badInput`) is refused. */
export function formParameters(
  parameters: IParameter[],
  values: Record<string, string | boolean>,
  initial: (p: IParameter) => string,
  badInput: (name: string) => boolean = () => false
): { parameters: Record<string, unknown> } | { error: string; name: string } {
  const out: Record<string, unknown> = {};
  for (const p of parameters) {
    const value = values[p.name];
    if (p.type === 'bool') {
      if (value !== (p.default === true)) {
        out[p.name] = value;
      }
      continue;
    }
    const text = String(value ?? '');
    if (p.secret) {
      if (text) {
        out[p.name] = text;
      }
      continue;
    }
    const kind = numericKind(p);
    if (kind) {
      const number = badInput(p.name) ? readNumber(p, kind, '') : readNumber(p, kind, text);
      if (typeof number === 'string') {
        return { error: number, name: p.name };
      }
      if (!sameValue(number, p.default)) {
        out[p.name] = number;
      }
      continue;
    }
    if (text === initial(p)) {
      continue;
    }
    if (p.type === 'str') {
      out[p.name] = text;
      continue;
    }
    try {
      out[p.name] = JSON.parse(text);
    } catch {
      out[p.name] = text; // the server checks it against the type and names the parameter
    }
  }
  return { parameters: out };
}

/** Scroll `container` (the panel) the least that shows `el` whole, or its top when it is
 * taller than the container. Only the panel scrolls, never the lab around it. */
export function reveal(container: HTMLElement, el: HTMLElement): void {
  const box = el.getBoundingClientRect();
  const view = container.getBoundingClientRect();
  if (box.bottom > view.bottom) {
    container.scrollTop += Math.min(box.bottom - view.bottom, box.top - view.top);
  } else if (box.top < view.top) {
    container.scrollTop -= view.top - box.top;
  }
}

const STEP_MARK: Record<string, string> = {
  done: '✓',
  running: '▶',
  pending: '○',
  error: '✗',
  'not run': '–'
};

const STEP_STATE: Record<string, string> = {
  done: 'done',
  running: 'running',
  pending: 'waiting',
  error: 'failed',
  'not run': 'not run'
};

/** The run's progress cell by cell: a line, a bar and the steps with ticks. */
export function progressView(
  job: IRunJob,
  finished: boolean,
  onCell: (index: number) => void
): HTMLElement | null {
  const progress = job.progress;
  if (!progress || !progress.total) {
    return null;
  }
  const cellLink = (index: number) =>
    h(
      'a',
      {
        class: 'nbops-cell-link',
        href: '#',
        'data-cell-index': String(index),
        title: 'Show this cell in the notebook',
        onclick: (e: Event) => {
          e.preventDefault();
          onCell(index);
        }
      },
      `cell ${index + 1}`
    );
  const { total, done, current, failed } = progress;
  let line: Children;
  if (failed) {
    line = [
      `Stopped in code cell ${failed.position} of ${total} (`,
      cellLink(failed.index),
      failed.step ? ` · ${failed.step}` : '',
      ')'
    ];
  } else if (current && !finished) {
    line = [
      `Cell ${current.position} of ${total} running (`,
      cellLink(current.index),
      current.step ? ` · ${current.step}` : ' · untagged',
      `) · ${done} done`
    ];
  } else if (finished) {
    line = `${done} of ${total} code cells ran`;
  } else if (done === 0) {
    line = `Starting the kernel… ${total} code cells to run`;
  } else {
    line = `${done} of ${total} code cells done`;
  }
  return h(
    'div',
    { class: 'nbops-run-progress', 'aria-live': 'polite' },
    h('div', { class: 'nbops-run-progress-text' }, line),
    h('progress', { class: 'nbops-run-progress-bar', max: String(total), value: String(done) }),
    progress.steps.length
      ? h(
          'ol',
          { class: 'nbops-run-steps', 'aria-label': 'Steps' },
          progress.steps.map(s =>
            h(
              'li',
              {
                class: `nbops-run-step nbops-run-step-${s.status.replace(' ', '-')}`,
                'data-step': s.step,
                'data-status': s.status,
                title: `${s.step}: ${STEP_STATE[s.status] ?? s.status} (${s.done} of ${s.cells} cell${s.cells === 1 ? '' : 's'})`
              },
              h('span', { class: 'nbops-run-step-mark', 'aria-hidden': 'true' }, STEP_MARK[s.status] ?? '·'),
              h('span', { class: 'nbops-run-step-name' }, s.step),
              s.cells > 1 ? h('span', { class: 'nbops-run-step-count' }, ` ${s.done}/${s.cells}`) : null
            )
          )
        )
      : null
  );
}

/** What a run that ended adds: the gate verdicts, the no-metrics hint, its warnings. */
export function outcomeView(job: IRunJob): HTMLElement[] {
  const out: HTMLElement[] = [];
  const gates = job.gates;
  if (gates) {
    if (gates.error) {
      out.push(
        h(
          'div',
          { class: 'nbops-run-gates-result nbops-gates-error' },
          h('strong', {}, 'Gates not checked: '),
          gates.error.message,
          gates.error.fix ? h('div', { class: 'nbops-fix' }, `Fix: ${gates.error.fix}`) : null
        )
      );
    } else if (gates.gates.length) {
      const failed = gates.gates.filter(g => !g.passed).length;
      out.push(
        h(
          'div',
          { class: 'nbops-run-gates-result' },
          h(
            'div',
            { class: 'nbops-gates-summary' },
            h('strong', {}, failed ? `Gates: ${failed} of ${gates.gates.length} failed` : `Gates: all ${gates.gates.length} passed`),
            h(
              'span',
              { class: 'nbops-hint' },
              gates.source === 'record'
                ? ' (recorded with the run)'
                : ' (the project\'s gates in pyproject.toml, checked as nbops ci does)'
            )
          ),
          h(
            'ul',
            { class: 'nbops-gate-list' },
            gates.gates.map(g =>
              h(
                'li',
                {
                  class: `nbops-gate ${g.passed ? 'nbops-gate-passed' : 'nbops-gate-failed'}`,
                  'data-gate': g.gate,
                  'data-passed': String(g.passed)
                },
                h('span', { class: 'nbops-gate-mark' }, g.passed ? '✓ pass' : '✗ fail'),
                ' ',
                h('code', {}, g.gate),
                g.reason ? h('span', { class: 'nbops-gate-reason' }, ` — ${g.reason}`) : null
              )
            )
          )
        )
      );
    } else {
      out.push(
        h(
          'div',
          { class: 'nbops-hint nbops-no-gates' },
          'No gates to check: add gates = ["accuracy >= 0.9"] under [tool.nbops] in pyproject.toml and each run says pass or fail (as nbops ci does).'
        )
      );
    }
  }
  const metrics = Object.keys(job.metrics ?? {});
  if (job.status === 'completed' && !metrics.length) {
    out.push(
      h(
        'div',
        { class: 'nbops-no-metrics', role: 'note' },
        h('strong', {}, 'This run recorded no metrics. '),
        'nbops records the numbers an evaluate step computes (its variables, or the last expression of an evaluate cell); tag the cells that score the model evaluate, or log a value yourself with ',
        h('code', {}, 'nbops.log_metric("name", value)'),
        ', and run again.'
      )
    );
  }
  if (job.warnings?.length) {
    out.push(
      h(
        'ul',
        { class: 'nbops-run-warnings' },
        job.warnings.map(w => h('li', { class: 'nbops-warning' }, w))
      )
    );
  }
  return out;
}

/** Whether Build bundle works for the panel's run, and else why not (one line). */
export function bundleAvailability(job: IRunJob | null): { enabled: boolean; reason: string | null } {
  if (job?.bundle_blocked) {
    return { enabled: false, reason: job.bundle_blocked };
  }
  if (!job || job.status !== 'completed' || !job.run_id) {
    return { enabled: false, reason: null };
  }
  if (job.has_model !== true) {
    return { enabled: false, reason: 'this run recorded no model' };
  }
  return { enabled: true, reason: null };
}
