import './base.css';
import './fixes.css';
import './runs.css';
import './runform.css';
import './start.css';
import './export.css';
