// Runs last in app.js: every module is defined by now.
requireModule('app');
