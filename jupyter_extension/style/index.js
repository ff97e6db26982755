import './base.css';
import './fixes.css';
import './runs.css';
import './start.css';
import './export.css';
