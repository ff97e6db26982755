import './base.css';
import './fixes.css';
