// The pipeline panel (right side bar): the current notebook's steps, parameters and problems
// as the library sees them, and the Export / Run / Build bundle actions.

import { JupyterFrontEnd } from '@jupyterlab/application';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import {
  ApiError,
  IAnalysis,
  IApiErrorBody,
  IExportResult,
  IParameter,
  IRunJob,
  IRunOutput,
  IStepInput,
  api
} from './api';
import { renderDag, stepRuns } from './dag';
import { markProblemCells, problemsByCell, relatedLabel } from './problems';
import { ExportTargets, exportFiles, exportTo } from './exporttarget';
import { FixesView, lastExportBox, outdatedNote } from './fixes';
import { RunsSection } from './runs';
import {
  bundleAvailability,
  formParameters,
  outcomeView,
  parameterInput,
  progressView,
  reveal
} from './runform';
import { ROLES, roleSpec } from './tags';
import { Children, h } from './dom';

const PIPELINE_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <circle cx="5" cy="6" r="3"/><circle cx="19" cy="6" r="3"/><circle cx="12" cy="18" r="3"/>
    <rect x="7" y="5" width="10" height="2"/>
    <polygon points="6.2,8.2 8,7.3 12.8,15.3 11,16.2"/>
    <polygon points="17.8,8.2 16,7.3 11.2,15.3 13,16.2"/>
  </g>
</svg>`;

export const pipelineIcon = new LabIcon({ name: 'nbops:pipeline', svgstr: PIPELINE_SVG });

const FINISHED = new Set(['completed', 'failed', 'killed', 'timeout', 'interrupted', 'error']);
const POLL_MS = 1000;


/** A parameter value as Python writes it (`2.0` for a float, `True`, `None`). */
function show(value: unknown, type = ''): string {
  if (typeof value === 'string') {
    return JSON.stringify(value);
  }
  if (typeof value === 'number' && Number.isInteger(value) && type.startsWith('float')) {
    return `${value}.0`;
  }
  if (value === null || value === undefined) {
    return 'None';
  }
  if (value === true) {
    return 'True';
  }
  if (value === false) {
    return 'False';
  }
  return JSON.stringify(value);
}

/** The run form's initial text for a parameter: its default, strings unquoted. */
function formText(p: IParameter): string {
  if (p.default === null || p.default === undefined) {
    return '';
  }
  if (typeof p.default === 'string') {
    return p.default;
  }
  if (typeof p.default === 'number') {
    return show(p.default, p.type);
  }
  return JSON.stringify(p.default);
}

function formatMetric(value: unknown): string {
  if (typeof value === 'number') {
    return Number.isInteger(value) ? String(value) : value.toPrecision(4);
  }
  return String(value);
}

interface IRunState {
  formOpen: boolean;
  parameters: IParameter[] | null;
  parametersError: IApiErrorBody | null;
  values: Record<string, string | boolean>;
  invalid: { error: string; name: string } | null; // a value the form refused (runform.ts)
  starting: boolean;
  job: IRunJob | null;
  error: IApiErrorBody | null;
}

/** What the panel remembers per notebook. */
interface INotebookState {
  seq: number;
  savedSignature: string | null;
  analysis: IAnalysis | null;
  analysisError: IApiErrorBody | null;
  loading: boolean;
  exporting: boolean;
  exported: IExportResult | null;
  exportError: IApiErrorBody | null;
  run: IRunState;
  bundling: boolean;
  bundleFolder: string | null;
  bundleError: IApiErrorBody | null;
  // The notebook (its signature) each result was made from: it is outdated when that changes.
  exportSignature: string | null;
  runSignature: string | null;
  bundleSignature: string | null;
}

function newState(): INotebookState {
  return {
    seq: 0,
    savedSignature: null,
    analysis: null,
    analysisError: null,
    loading: false,
    exporting: false,
    exported: null,
    exportError: null,
    run: {
      formOpen: false,
      parameters: null,
      parametersError: null,
      values: {},
      invalid: null,
      starting: false,
      job: null,
      error: null
    },
    bundling: false,
    bundleFolder: null,
    bundleError: null,
    exportSignature: null,
    runSignature: null,
    bundleSignature: null
  };
}

/** What the analysis reads from a notebook: each cell's type, source and tags. */
function signature(panel: NotebookPanel): string {
  const model = panel.content.model;
  if (!model) {
    return '';
  }
  const cells: unknown[] = [];
  for (const cell of model.cells) {
    cells.push([cell.type, cell.sharedModel.getSource(), cell.getMetadata('tags') ?? null]);
  }
  return JSON.stringify(cells);
}

function errorBody(error: unknown): IApiErrorBody {
  if (error instanceof ApiError) {
    return error.body;
  }
  return { message: String(error) };
}

export class PipelinePanel extends Widget {
  constructor(
    private readonly app: JupyterFrontEnd,
    private readonly tracker: INotebookTracker
  ) {
    super();
    this.id = 'nbops-pipeline-panel';
    this.addClass('nbops-panel');
    this.title.icon = pipelineIcon;
    this.title.caption = 'nbops pipeline';
    this.node.tabIndex = -1;
    this._runs = new RunsSection(app, {
      render: () => this.render(),
      jumpToCell: (index, id) => this.jumpToCell(index, id)
    });
    tracker.currentChanged.connect(this._onCurrentChanged, this);
    this._onCurrentChanged();
  }

  dispose(): void {
    for (const timer of this._timers) {
      window.clearTimeout(timer);
    }
    this._runs.dispose();
    super.dispose();
  }

  /** Read the current notebook's analysis again (from the saved file). */
  async refresh(): Promise<void> {
    const panel = this._panel;
    if (!panel) {
      this.render();
      return;
    }
    const state = this._state(panel);
    const seq = ++state.seq;
    state.loading = true;
    this.render();
    try {
      const analysis = await api.analysis(panel.context.localPath);
      if (seq === state.seq) {
        state.analysis = analysis;
        state.analysisError = null;
        markProblemCells(panel, analysis);
      }
    } catch (error) {
      if (seq === state.seq) {
        state.analysisError = errorBody(error);
      }
    } finally {
      if (seq === state.seq) {
        state.loading = false;
        if (this._panel === panel) {
          this.render();
        }
        void this._runs.load(this._runsPath(panel));
      }
    }
  }

  /** Whose runs the Runs section lists: the notebook's, or for a run's output its source's. */
  private _runsPath(panel: NotebookPanel): string {
    return this._state(panel).analysis?.run_output?.source ?? panel.context.localPath;
  }

  protected onAfterShow(): void {
    void this.refresh();
  }

  private _onCurrentChanged(): void {
    const panel = this.tracker.currentWidget;
    if (panel === this._panel) {
      return;
    }
    this._panel = panel;
    if (panel && !this._connected.has(panel)) {
      this._connected.add(panel);
      panel.context.saveState.connect((_sender, saveState) => {
        if (saveState === 'completed') {
          this._state(panel).savedSignature = signature(panel);
          if (this._panel === panel && this.isVisible) {
            void this.refresh();
          }
        }
      });
      void panel.context.ready.then(() => {
        this._state(panel).savedSignature = signature(panel);
        this._renderDirty();
      });
      let timer = 0;
      panel.context.model.contentChanged.connect(() => {
        window.clearTimeout(timer);
        timer = window.setTimeout(() => {
          if (this._panel === panel) {
            this._renderDirty();
          }
        }, 300);
      });
      panel.disposed.connect(() => {
        this._states.delete(panel.id);
        this._fixes.forget(panel);
      });
    }
    if (!panel) {
      this.render();
      return;
    }
    void panel.context.ready.then(() => {
      if (this._panel === panel && this.isVisible) {
        void this.refresh();
      } else {
        this.render();
      }
    });
    this.render();
  }

  private _state(panel: NotebookPanel): INotebookState {
    let state = this._states.get(panel.id);
    if (!state) {
      state = newState();
      this._states.set(panel.id, state);
    }
    return state;
  }

  // -- rendering ------------------------------------------------------------------------

  render(): void {
    const panel = this._panel;
    const body: (HTMLElement | string)[] = [];
    if (!panel) {
      this.node.replaceChildren(
        this._header(null),
        h(
          'div',
          { class: 'nbops-empty' },
          'Open a notebook to see its pipeline: the steps, parameters and problems nbops finds in its tagged cells.'
        )
      );
      return;
    }
    const state = this._state(panel);
    let analysis = state.analysis;
    if (state.analysisError) {
      body.push(this._errorBox(state.analysisError, 'Cannot read the pipeline'));
    }
    if (analysis) {
      this._fixes.sync(panel, analysis);
      if (analysis.run_output) {
        body.push(this._runOutputBanner(analysis.run_output));
      }
      if (!analysis.tagged) {
        // The only problem of an untagged notebook is that it is untagged: say how to start.
        body.push(this._howToStart());
        if (!analysis.run_output) {
          body.push(h('div', { class: 'nbops-suggest-start' }, this._fixes.suggestButton(panel, 'Suggest roles for the cells…')));
        }
        analysis = {
          ...analysis,
          problems: analysis.problems.filter(
            p => (p.cell_index !== null && p.cell_index !== undefined) || p.cell_id
          )
        };
      }
      body.push(this._problems(analysis));
      body.push(this._fixes.suggestions(panel));
      body.push(this._fixes.fixList(panel, analysis));
      if (analysis.tagged && analysis.problems.length && !analysis.steps.length) {
        body.push(
          h('p', { class: 'nbops-hint' }, 'The steps and parameters appear once the problems above are fixed and the notebook saved.')
        );
      } else if (analysis.tagged) {
        body.push(this._dag(analysis, state));
        body.push(this._steps(analysis));
        body.push(this._parameters(analysis));
      }
      body.push(this._warnings(analysis));
      body.push(this._actions(panel, state));
      body.push(this._runs.render(this._runsPath(panel)));
    } else if (state.loading) {
      body.push(h('div', { class: 'nbops-loading' }, 'Reading the notebook…'));
    } else if (!state.analysisError) {
      body.push(h('div', { class: 'nbops-loading' }, 'Press Refresh to read the pipeline.'));
    }
    this._renderedOutdated = this._outdatedKey(panel);
    this.node.replaceChildren(
      this._header(panel),
      h(
        'div',
        { class: 'nbops-dirty', hidden: !this._stale(panel) },
        'Unsaved changes to cells or tags: save the notebook to update the pipeline.'
      ),
      h('div', { class: 'nbops-panel-body' }, body)
    );
    this._revealPending();
  }

  /** Scroll the panel to what was just opened (the run form, the run's progress) once it is
   * drawn, so it is not left below the fold. */
  private _revealPending(): void {
    const target = this._reveal ? (this.node.querySelector(this._reveal) as HTMLElement | null) : null;
    if (target) {
      this._reveal = null;
      reveal(this.node, target);
    }
  }

  /** A run's output notebook (papermill's executed copy): say whose, and link the source,
   * which is what Export and Run work on (they are disabled here). */
  private _runOutputBanner(output: IRunOutput): HTMLElement {
    const run = output.run_id
      ? ['Output of run ', h('code', { class: 'nbops-run-id' }, output.run_id), '. ']
      : ['Output of a papermill run. '];
    const source = output.source;
    return h(
      'div',
      { class: 'nbops-run-output-banner', role: 'note' },
      run,
      'Export and runs work on the source notebook',
      source
        ? [
            ': ',
            h(
              'a',
              {
                class: 'nbops-source-link',
                href: '#',
                title: `Open ${source}`,
                onclick: (event: Event) => {
                  event.preventDefault();
                  void this.app.commands.execute('docmanager:open', { path: source });
                }
              },
              source
            )
          ]
        : [
            ' (not found: it may have been moved or deleted). ',
            h(
              'span',
              { class: 'nbops-hint' },
              'To use this notebook as a source, remove its metadata.papermill and move it out of nbops-runs/.'
            )
          ]
    );
  }

  private _renderDirty(): void {
    const note = this.node.querySelector('.nbops-dirty') as HTMLElement | null;
    if (note && this._panel) {
      note.hidden = !this._stale(this._panel);
    }
    if (this._panel && this._outdatedKey(this._panel) !== this._renderedOutdated) {
      this.render(); // a result box turned outdated (or current again, after an undo)
    }
  }

  /** Whether a result made from the notebook with `made` (its signature) is outdated. */
  private _outdated(panel: NotebookPanel, made: string | null): boolean {
    return made !== null && made !== signature(panel);
  }

  /** Whether the export is of an older notebook. Made from this panel: the open notebook's
   * cells (types, sources, tags) changed since; a save that changed only the file's metadata
   * (the kernel's language_info, written when a run saves the notebook) leaves it current.
   * Otherwise: the saved file differs from the one the export read (its manifest's sha256). */
  private _exportOutdated(panel: NotebookPanel, state: INotebookState): boolean {
    if (state.exportSignature !== null) {
      return this._outdated(panel, state.exportSignature);
    }
    const saved = state.analysis?.sha256;
    const read = state.exported?.source_sha256;
    return !!saved && !!read && saved !== read;
  }

  private _outdatedKey(panel: NotebookPanel): string {
    const state = this._state(panel);
    return [
      this._exportOutdated(panel, state),
      this._outdated(panel, state.runSignature),
      this._outdated(panel, state.bundleSignature)
    ].join();
  }

  /** Whether the cells' sources, types or tags differ from the saved file. */
  private _stale(panel: NotebookPanel): boolean {
    const saved = this._state(panel).savedSignature;
    return saved !== null && panel.context.model.dirty && saved !== signature(panel);
  }

  private _header(panel: NotebookPanel | null): HTMLElement {
    const loading = panel ? this._state(panel).loading : false;
    return h(
      'div',
      { class: 'nbops-panel-header' },
      h('div', { class: 'nbops-panel-title' }, 'nbops pipeline'),
      h(
        'div',
        { class: 'nbops-panel-path', title: panel?.context.localPath },
        panel ? panel.context.localPath : 'no notebook'
      ),
      h(
        'button',
        {
          class: 'jp-Button jp-mod-styled jp-mod-reject nbops-refresh',
          title: 'Read the saved notebook again',
          disabled: !panel || loading,
          onclick: () => void this.refresh()
        },
        loading ? 'Refreshing…' : 'Refresh'
      )
    );
  }

  private _section(title: string, cls: string, ...children: Children[]): HTMLElement {
    return h(
      'section',
      { class: `nbops-section ${cls}` },
      h('h3', { class: 'nbops-section-title' }, title),
      ...children
    );
  }

  private _roleBadge(role: string, text?: string): HTMLElement {
    const spec = roleSpec(role);
    return h(
      'span',
      { class: `nbops-badge nbops-role-${role}`, title: spec?.description },
      text ?? role
    );
  }

  private _cellLink(index: number | null | undefined, id: string | null | undefined, label?: string): HTMLElement {
    const text = label ?? (index !== null && index !== undefined ? `cell ${index + 1}` : 'cell');
    return h(
      'a',
      {
        class: 'nbops-cell-link',
        href: '#',
        title: 'Show this cell in the notebook',
        'data-cell-index': index !== null && index !== undefined ? String(index) : undefined,
        'data-cell-id': id ?? undefined,
        onclick: (event: Event) => {
          event.preventDefault();
          this.jumpToCell(index, id);
        }
      },
      text
    );
  }

  /** Activate a cell of the current notebook (by id, else by index) and scroll to it. */
  jumpToCell(index: number | null | undefined, id: string | null | undefined): void {
    const panel = this._panel;
    if (!panel) {
      return;
    }
    const notebook = panel.content;
    let i = id ? notebook.widgets.findIndex(c => c.model.id === id) : -1;
    if (i < 0 && index !== null && index !== undefined) {
      i = index;
    }
    if (i < 0 || i >= notebook.widgets.length) {
      return;
    }
    const cell = notebook.widgets[i];
    this.app.shell.activateById(panel.id);
    notebook.deselectAll();
    notebook.activeCellIndex = i;
    notebook.mode = 'command';
    void notebook.scrollToCell(cell, 'center').then(() => {
      notebook.mode = 'command';
      notebook.activate();
      cell.addClass('nbops-flash');
      this._timers.push(window.setTimeout(() => cell.removeClass('nbops-flash'), 1600));
    });
  }

  private _howToStart(): HTMLElement {
    return this._section(
      'Start a pipeline',
      'nbops-start',
      h(
        'p',
        {},
        'This notebook has no nbops tags yet. Select cells and give them a role: with the tag button in the cell toolbar, right-click → "nbops role", the command palette ("nbops"), or the keys below (command mode). Then save: the panel shows the steps.'
      ),
      h(
        'ul',
        { class: 'nbops-role-list' },
        ROLES.map((role, i) =>
          h(
            'li',
            {},
            this._roleBadge(role.name),
            h('span', { class: 'nbops-role-desc' }, role.description),
            h('kbd', {}, `Ctrl+Shift+${i + 1}`)
          )
        )
      ),
      h(
        'p',
        { class: 'nbops-hint' },
        'Name steps with "Named step…" (e.g. transform:features); cells with the same tag form one step.'
      )
    );
  }

  private _problems(analysis: IAnalysis): HTMLElement | string {
    if (!analysis.problems.length) {
      return '';
    }
    return this._section(
      `Problems (${analysis.problems.length})`,
      'nbops-problems',
      h(
        'ul',
        {},
        analysis.problems.map(p =>
          h(
            'li',
            { class: 'nbops-problem' },
            h('div', { class: 'nbops-problem-message' }, p.message),
            p.fix ? h('div', { class: 'nbops-fix' }, `Fix: ${p.fix}`) : null,
            p.cell_index !== null && p.cell_index !== undefined || p.cell_id
              ? this._cellLink(p.cell_index, p.cell_id, p.cell_index !== null && p.cell_index !== undefined ? `Go to cell ${p.cell_index + 1}` : 'Go to cell')
              : null,
            (p.related ?? [])
              .filter(r => r.cell_index !== null && r.cell_index !== undefined)
              .map(r => [
                h('span', { class: 'nbops-related-label' }, ` · ${relatedLabel(p)} `),
                this._cellLink(r.cell_index, r.cell_id, `cell ${(r.cell_index as number) + 1}`)
              ]),
            this._panel ? this._fixes.problemFix(this._panel, p) : null
          )
        )
      )
    );
  }

  private _warnings(analysis: IAnalysis): HTMLElement | string {
    if (!analysis.warnings.length) {
      return '';
    }
    return this._section(
      `Warnings (${analysis.warnings.length})`,
      'nbops-warnings',
      h(
        'ul',
        {},
        analysis.warnings.map(w =>
          h(
            'li',
            { class: 'nbops-warning' },
            h('span', {}, w.message),
            w.cell_index !== null && w.cell_index !== undefined || w.cell_id
              ? [' ', this._cellLink(w.cell_index, w.cell_id)]
              : null
          )
        )
      )
    );
  }

  private _names(items: (IStepInput | string)[], kind: 'in' | 'out'): HTMLElement {
    if (!items.length) {
      return h('span', { class: 'nbops-none' }, '—');
    }
    return h(
      'span',
      { class: 'nbops-names' },
      items.map(item => {
        const name = typeof item === 'string' ? item : item.name;
        const from =
          typeof item === 'string'
            ? null
            : item.step
              ? item.step
              : item.source === 'parameter' || item.source === 'parameters'
                ? 'parameter'
                : item.source ?? null;
        return h(
          'code',
          { class: `nbops-name nbops-${kind}`, title: from ? `from ${from}` : undefined },
          name,
          from && kind === 'in' ? h('span', { class: 'nbops-from' }, ` ← ${from}`) : null
        );
      })
    );
  }

  /** The steps as a DAG (dag.ts), with each step's outcome in the panel's last run. */
  private _dag(analysis: IAnalysis, state: INotebookState): HTMLElement | string {
    if (!analysis.steps.length) {
      return '';
    }
    // The run selected in the Runs section, else the panel's last finished run.
    const selected = this._panel ? this._runs.selectedRun(this._runsPath(this._panel)) : null;
    const job = state.run.job;
    const runs = selected
      ? stepRuns(selected.cells)
      : job && FINISHED.has(job.status)
        ? stepRuns(job.cells)
        : null;
    const from = selected ? `${selected.short_id} (selected in Runs)` : job?.run_id ?? '';
    return this._section(
      'Pipeline',
      'nbops-dag-section',
      renderDag(analysis, {
        onCell: (index, id) => this.jumpToCell(index, id),
        runs,
        problems: problemsByCell(analysis.problems)
      }),
      runs && runs.size
        ? h('div', { class: 'nbops-hint nbops-dag-caption' }, `Durations and status from run ${from}`)
        : null
    );
  }

  private _steps(analysis: IAnalysis): HTMLElement {
    if (!analysis.steps.length) {
      return this._section(
        'Steps',
        'nbops-steps',
        h('p', { class: 'nbops-hint' }, 'No steps yet: tag cells transform, train or evaluate.')
      );
    }
    return this._section(
      `Steps (${analysis.steps.length})`,
      'nbops-steps',
      h(
        'ol',
        { class: 'nbops-step-list' },
        analysis.steps.map(step =>
          h(
            'li',
            { class: `nbops-step nbops-role-${step.role}`, 'data-step': step.key },
            h(
              'div',
              { class: 'nbops-step-head' },
              this._roleBadge(step.role, step.key),
              h(
                'span',
                { class: 'nbops-step-cells' },
                step.cells.map((c, i) => [i ? ', ' : '', this._cellLink(c.index, c.id)])
              )
            ),
            h('div', { class: 'nbops-step-io' }, h('span', { class: 'nbops-io-label' }, 'in'), this._names(step.inputs, 'in')),
            h('div', { class: 'nbops-step-io' }, h('span', { class: 'nbops-io-label' }, 'out'), this._names(step.outputs, 'out'))
          )
        )
      )
    );
  }

  private _parameters(analysis: IAnalysis): HTMLElement {
    if (!analysis.parameters.length) {
      return this._section(
        'Parameters',
        'nbops-parameters',
        h('p', { class: 'nbops-hint' }, 'No parameters: tag a cell of "name = value" lines "parameters".')
      );
    }
    return this._section(
      `Parameters (${analysis.parameters.length})`,
      'nbops-parameters',
      h(
        'table',
        { class: 'nbops-table' },
        h('thead', {}, h('tr', {}, h('th', {}, 'name'), h('th', {}, 'type'), h('th', {}, 'default'))),
        h(
          'tbody',
          {},
          analysis.parameters.map(p =>
            h(
              'tr',
              { class: 'nbops-parameter', title: p.description || undefined },
              h('td', {}, h('code', {}, p.name)),
              h('td', { class: 'nbops-type' }, p.type),
              h('td', {}, h('code', {}, show(p.default, p.type)))
            )
          )
        )
      )
    );
  }

  private _errorBox(error: IApiErrorBody, title?: string): HTMLElement {
    const hasCell =
      (error.cell_index !== null && error.cell_index !== undefined) || !!error.cell_id;
    return h(
      'div',
      { class: 'nbops-error' },
      title ? h('div', { class: 'nbops-error-title' }, title) : null,
      h('div', { class: 'nbops-error-message' }, error.message),
      error.fix ? h('div', { class: 'nbops-fix' }, `Fix: ${error.fix}`) : null,
      hasCell
        ? this._cellLink(
            error.cell_index,
            error.cell_id,
            error.cell_index !== null && error.cell_index !== undefined
              ? `Go to cell ${error.cell_index + 1}`
              : 'Go to cell'
          )
        : null
    );
  }

  private _actions(panel: NotebookPanel, state: INotebookState): HTMLElement {
    const run = state.run;
    const job = run.job;
    const running = !!job && !FINISHED.has(job.status);
    const bundleable = bundleAvailability(job);
    const canBundle = bundleable.enabled && !state.bundling;
    // A run's output notebook is not exported or run: its source is (see the banner).
    const isOutput = !!state.analysis?.run_output;
    const onSource = 'This is a run\'s output notebook: export and run its source notebook';
    return this._section(
      'Actions',
      'nbops-actions',
      // Export, for the target chosen beside it (exporttarget.ts)
      h(
        'div',
        { class: 'nbops-action' },
        h(
          'div',
          { class: 'nbops-export-row' },
          h(
            'button',
            {
              class: 'jp-Button jp-mod-styled jp-mod-accept nbops-export',
              disabled: state.exporting || isOutput,
              title: isOutput ? onSource : this._targets.title(panel.context.localPath),
              onclick: () => void this._export(panel)
            },
            state.exporting ? 'Exporting…' : 'Export'
          ),
          this._targets.picker(panel.context.localPath, state.exporting || isOutput)
        ),
        state.exporting
          ? h('div', { class: 'nbops-hint nbops-export-busy' }, this._targets.busy(panel.context.localPath))
          : null,
        state.exported
          ? h(
              'div',
              {
                class: `nbops-result nbops-export-result${this._exportOutdated(panel, state) ? ' nbops-outdated' : ''}`
              },
              this._exportOutdated(panel, state) ? outdatedNote('Export again to include the changes.') : null,
              h('strong', {}, `${state.exported.name} v${state.exported.version}`),
              state.exported.new_version ? ' (new version)' : ' (unchanged)',
              h('div', {}, 'in ', h('code', { class: 'nbops-folder' }, state.exported.folder)),
              exportFiles(state.exported, path => void this.app.commands.execute('docmanager:open', { path })),
              state.exported.warnings?.length
                ? h('div', { class: 'nbops-hint' }, `${state.exported.warnings.length} warning(s): see Warnings`)
                : null
            )
          : null,
        !state.exported && !state.exporting && state.analysis ? lastExportBox(state.analysis) : null,
        state.exportError ? this._errorBox(state.exportError, 'Export failed') : null
      ),
      // Run
      h(
        'div',
        { class: 'nbops-action' },
        h(
          'button',
          {
            class: 'jp-Button jp-mod-styled jp-mod-accept nbops-run-open',
            disabled: running || isOutput,
            title: isOutput
              ? onSource
              : 'Run the notebook with parameters as a tracked run (nbops run)',
            onclick: () => void this._toggleRunForm(panel)
          },
          running ? 'Running…' : 'Run with parameters…'
        ),
        run.formOpen && !isOutput ? this._runForm(panel, state) : null,
        run.error ? this._errorBox(run.error, 'Run not started') : null,
        job ? this._runStatus(job, this._outdated(panel, state.runSignature)) : null
      ),
      // Bundle
      h(
        'div',
        { class: 'nbops-action' },
        h(
          'button',
          {
            class: 'jp-Button jp-mod-styled jp-mod-accept nbops-bundle',
            disabled: !canBundle,
            title: canBundle
              ? 'Build a deployable bundle from the last run'
              : bundleable.reason
                ? `No bundle: ${bundleable.reason}`
                : 'Build a bundle: needs a completed run with a model first',
            onclick: () => void this._bundle(panel)
          },
          state.bundling ? 'Building…' : 'Build bundle'
        ),
        bundleable.reason && !state.bundleFolder
          ? h('div', { class: 'nbops-hint nbops-bundle-blocked' }, `No bundle: ${bundleable.reason}`)
          : null,
        state.bundleFolder
          ? h(
              'div',
              {
                class: `nbops-result nbops-bundle-result${this._outdated(panel, state.bundleSignature) ? ' nbops-outdated' : ''}`
              },
              this._outdated(panel, state.bundleSignature)
                ? outdatedNote('Run the notebook again, then build a new bundle.')
                : null,
              'Bundle in ',
              h('code', { class: 'nbops-folder' }, state.bundleFolder)
            )
          : null,
        state.bundleError ? this._errorBox(state.bundleError, 'Bundle failed') : null
      )
    );
  }

  private _runForm(panel: NotebookPanel, state: INotebookState): HTMLElement {
    const run = state.run;
    if (run.parametersError) {
      return this._errorBox(run.parametersError, 'Cannot read the parameters');
    }
    if (!run.parameters) {
      return h('div', { class: 'nbops-loading' }, 'Reading the parameters…');
    }
    const rows = run.parameters.map(p => {
      const id = `nbops-param-${p.name}`;
      const input = parameterInput(p, id, run.values[p.name], value => {
        run.values[p.name] = value;
        if (run.invalid?.name === p.name) {
          run.invalid = null;
          this.node.querySelector('.nbops-run-invalid')?.remove();
        }
      });
      if (run.invalid?.name === p.name) {
        input.setAttribute('aria-invalid', 'true');
      }
      return h(
        'div',
        { class: 'nbops-param-row' },
        h('label', { for: id }, h('code', {}, p.name), h('span', { class: 'nbops-type' }, ` ${p.type}`)),
        input,
        p.description ? h('div', { class: 'nbops-hint' }, p.description) : null
      );
    });
    return h(
      'form',
      {
        class: 'nbops-run-form',
        novalidate: true,
        onsubmit: (e: Event) => {
          e.preventDefault();
          void this._startRun(panel);
        }
      },
      rows.length ? rows : h('p', { class: 'nbops-hint' }, 'This notebook has no parameters.'),
      run.invalid
        ? h('div', { class: 'nbops-run-invalid', role: 'alert' }, `Not started: ${run.invalid.error}`)
        : null,
      h(
        'button',
        { type: 'submit', class: 'jp-Button jp-mod-styled jp-mod-accept nbops-run-start', disabled: run.starting },
        run.starting ? 'Starting…' : 'Start run'
      )
    );
  }

  private _runStatus(job: IRunJob, outdated = false): HTMLElement {
    const metrics = Object.entries(job.metrics ?? {});
    const error =
      job.error && typeof job.error === 'object'
        ? job.error
        : job.error
          ? { message: String(job.error) }
          : null;
    return h(
      'div',
      { class: `nbops-result nbops-run-result nbops-status-${job.status}${outdated ? ' nbops-outdated' : ''}` },
      outdated ? outdatedNote('Run again to use the changes.') : null,
      h(
        'div',
        {},
        'Run ',
        h('code', { class: 'nbops-run-id' }, job.run_id ?? '(starting)'),
        ': ',
        h('strong', { class: 'nbops-run-status' }, job.status)
      ),
      progressView(job, FINISHED.has(job.status), index => this.jumpToCell(index, null)),
      metrics.length
        ? h(
            'table',
            { class: 'nbops-table nbops-metrics' },
            h(
              'tbody',
              {},
              metrics.map(([k, v]) => h('tr', {}, h('td', {}, k), h('td', {}, formatMetric(v))))
            )
          )
        : null,
      FINISHED.has(job.status) ? outcomeView(job) : null,
      job.output_notebook
        ? h(
            'a',
            {
              class: 'nbops-output-link',
              href: '#',
              title: `Open ${job.output_notebook} (a copy of the run's output notebook; the run store keeps the original)`,
              onclick: (e: Event) => {
                e.preventDefault();
                void this._openOutput(job);
              }
            },
            'Open the output notebook'
          )
        : null,
      error ? this._errorBox(error) : null,
      this._outputError ? this._errorBox(this._outputError) : null
    );
  }

  /** Open a run's output notebook: the server copies it from the run store to a visible
   * `nbops-runs/` folder next to the notebook. Should that copy have failed, the path is the
   * store's (`.nbops/runs/...`), a hidden folder the Jupyter contents API refuses unless
   * hidden files are allowed: say so. */
  private async _openOutput(job: IRunJob): Promise<void> {
    const path = job.output_notebook;
    if (!path) {
      return;
    }
    this._outputError = null;
    try {
      await this.app.serviceManager.contents.get(path, { content: false });
    } catch (error) {
      const hidden = path.split('/').some(part => part.startsWith('.'));
      const show = `\`nbops runs show ${job.run_id ?? 'latest'}\``;
      this._outputError = {
        message: `JupyterLab cannot open ${path} (${(error as Error).message ?? error})`,
        fix: hidden
          ? 'nbops could not copy the output notebook next to the notebook (see the Jupyter ' +
            'server log), and the run store is a hidden folder (.nbops): make the ' +
            "notebook's folder writable and run again, start JupyterLab with " +
            `--ContentsManager.allow_hidden=True, or use ${show}`
          : 'the copy may have been moved or deleted; the run store keeps the original: ' +
            `see ${show}`
      };
      this.render();
      return;
    }
    this.render();
    await this.app.commands.execute('docmanager:open', { path });
  }

  // -- actions --------------------------------------------------------------------------

  private async _saveIfDirty(panel: NotebookPanel): Promise<void> {
    if (panel.context.model.dirty && !panel.context.model.readOnly) {
      await panel.context.save();
    }
  }

  private async _export(panel: NotebookPanel): Promise<void> {
    const state = this._state(panel);
    state.exporting = true;
    state.exportError = null;
    this.render();
    try {
      await this._saveIfDirty(panel);
      const made = signature(panel);
      const path = panel.context.localPath;
      state.exported = await exportTo(path, this._targets.get(path));
      state.exportSignature = made;
      if (state.analysis?.sha256 !== state.exported.source_sha256) {
        void this.refresh(); // the file changed since the panel read it
      }
    } catch (error) {
      state.exported = null;
      state.exportSignature = null;
      state.exportError = errorBody(error);
    } finally {
      state.exporting = false;
      this.render();
    }
  }

  private async _toggleRunForm(panel: NotebookPanel): Promise<void> {
    const run = this._state(panel).run;
    run.formOpen = !run.formOpen;
    run.error = null;
    if (!run.formOpen) {
      this.render();
      return;
    }
    run.parameters = null;
    run.parametersError = null;
    run.invalid = null;
    this._reveal = '.nbops-run-form';
    this.render();
    try {
      await this._saveIfDirty(panel);
      const answer = await api.parameters(panel.context.localPath);
      run.parameters = answer.parameters;
      for (const p of run.parameters) {
        if (!(p.name in run.values)) {
          run.values[p.name] =
            p.type === 'bool'
              ? p.default === true
              : p.secret || p.default === null || p.default === undefined
                ? ''
                : formText(p);
        }
      }
    } catch (error) {
      run.parametersError = errorBody(error);
    }
    this._reveal = run.parametersError ? '.nbops-action .nbops-error' : '.nbops-run-form';
    this.render();
  }

  private async _startRun(panel: NotebookPanel): Promise<void> {
    const state = this._state(panel);
    const run = state.run;
    if (run.starting || (run.job && !FINISHED.has(run.job.status))) {
      return; // one run at a time from the form: a second submit while one starts is dropped
    }
    const checked = formParameters(run.parameters ?? [], run.values, formText, name => {
      const field = this.node.querySelector(`.nbops-run-form input[name="${CSS.escape(name)}"]`);
      return !!(field as HTMLInputElement | null)?.validity?.badInput;
    });
    if ('error' in checked) {
      run.invalid = checked; // refused here, in one line: no run is asked for
      this._reveal = '.nbops-run-invalid';
      this.render();
      (this.node.querySelector(`.nbops-run-form input[name="${CSS.escape(checked.name)}"]`) as HTMLInputElement | null)?.focus();
      return;
    }
    run.invalid = null;
    run.starting = true;
    run.error = null;
    this.render();
    try {
      // The run reads the saved file: what it was when last saved is what the run runs.
      const made = state.savedSignature;
      const started = await api.startRun(panel.context.localPath, checked.parameters);
      run.job = { job: started.job, status: 'running' };
      this._reveal = '.nbops-run-result';
      state.runSignature = made;
      run.formOpen = false;
      state.bundleFolder = null;
      state.bundleError = null;
      this._poll(panel, started.job);
    } catch (error) {
      run.error = errorBody(error);
    } finally {
      run.starting = false;
      this.render();
    }
  }

  private _poll(panel: NotebookPanel, jobId: string): void {
    const state = this._state(panel);
    const tick = async () => {
      if (this.isDisposed || panel.isDisposed || state.run.job?.job !== jobId) {
        return;
      }
      try {
        state.run.job = await api.run(jobId);
      } catch (error) {
        state.run.job = {
          job: jobId,
          status: 'error',
          error: errorBody(error)
        };
      }
      if (this._panel === panel) {
        this.render();
      }
      if (state.run.job && !FINISHED.has(state.run.job.status)) {
        this._timers.push(window.setTimeout(() => void tick(), POLL_MS));
      } else {
        void this._runs.load(this._runsPath(panel)); // the finished run, in the Runs list
      }
    };
    this._timers.push(window.setTimeout(() => void tick(), POLL_MS / 2));
  }

  private async _bundle(panel: NotebookPanel): Promise<void> {
    const state = this._state(panel);
    const runId = state.run.job?.run_id;
    if (!runId) {
      return;
    }
    state.bundling = true;
    state.bundleError = null;
    state.bundleFolder = null;
    this.render();
    try {
      const answer = await api.bundle(runId, panel.context.localPath);
      state.bundleFolder = answer.folder;
      state.bundleSignature = state.runSignature; // a bundle is of its run's notebook
    } catch (error) {
      state.bundleError = errorBody(error);
    } finally {
      state.bundling = false;
      this.render();
    }
  }

  private _panel: NotebookPanel | null = null;
  private _states = new Map<string, INotebookState>();
  private _connected = new WeakSet<NotebookPanel>();
  private _timers: number[] = [];
  private _outputError: IApiErrorBody | null = null;
  private _reveal: string | null = null; // a selector to scroll to once drawn (runform.ts)
  private _renderedOutdated = '';
  private _fixes = new FixesView(
    () => this.render(),
    (index, id) => this.jumpToCell(index, id)
  );
  private _runs: RunsSection;
  private _targets = new ExportTargets(() => this.render());
}
